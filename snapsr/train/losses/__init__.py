"""Loss terms shared by the training recipes; each module is one concept."""
