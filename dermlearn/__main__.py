import sys

from dermlearn.cli import main

if __name__ == "__main__":
    sys.exit(main())
