"""What several stages share: GitHub workflow commands, errors, retry, git, the Docker engine, the registry
client, MLflow tracking, templating, Markdown, paths and inputs, the project environment and the run record.

Nothing here imports a stage (tests/test_architecture.py checks it)."""
