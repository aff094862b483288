from tradepipe.cli import main

main()
