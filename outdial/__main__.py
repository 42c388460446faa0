from outdial.cli import main

main()
