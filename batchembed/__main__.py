from batchembed.cli import main

main()
