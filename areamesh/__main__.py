from areamesh.cli import main

main()
