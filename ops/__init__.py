"""The ``mlops`` command and local operations: the local stack, infra apply, the Prefect runner, demo, replay."""
