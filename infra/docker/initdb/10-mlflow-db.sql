-- MLflow keeps its registry in its own database next to Prefect's (same server, same role).
CREATE DATABASE mlflow OWNER mlops;
