"""One module per action, named after it (``actions/open-pr`` is ``open_pr.py``). A stage imports
``mlops_actions.core`` only, never another stage (tests/test_architecture.py checks it)."""
