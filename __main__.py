from ptocr.cli import main

main()
