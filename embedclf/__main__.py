from embedclf.cli import main

main()
