from snapsr.cli import main

main()
