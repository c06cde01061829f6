from pretune.cli.main import run

run()
