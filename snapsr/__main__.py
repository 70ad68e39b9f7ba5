from snapsr.cli import entry

entry()
