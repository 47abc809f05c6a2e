from lineup.cli import main

# Guarded: worker processes started with "spawn" import the main module again and must not rerun the CLI.
if __name__ == "__main__":
    main()
