from wmlab.cli import main

main()
