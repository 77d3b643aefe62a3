from ptocr.converter.cli import main

main()
