from __future__ import annotations

import pytest

from vectorlake.config import Config


def test_register_a_model_version_and_load_it_by_alias(cfg: Config, unique_name: str) -> None:
    import mlflow
    import mlflow.pyfunc
    import pandas as pd
    from mlflow import MlflowClient

    class Doubler(mlflow.pyfunc.PythonModel):
        def __init__(self, factor: float) -> None:
            self.factor = factor

        def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
            return model_input["x"] * self.factor

    mlflow.set_tracking_uri(cfg.mlflow_tracking_uri)
    mlflow.set_registry_uri(cfg.mlflow_tracking_uri)
    assert cfg.mlflow_tracking_uri.startswith("sqlite:///")
    client = MlflowClient()
    name = unique_name
    experiment = client.create_experiment(name, artifact_location=f"{cfg.mlflow_artifact_root}/{name}")
    try:
        versions = []
        for factor in (2.0, 3.0):
            with mlflow.start_run(experiment_id=experiment):
                info = mlflow.pyfunc.log_model(
                    name="model", python_model=Doubler(factor), registered_model_name=name
                )
                versions.append(info.registered_model_version)
        assert [int(v) for v in versions] == [1, 2]
        client.set_registered_model_alias(name, "champion", "1")

        champion = mlflow.pyfunc.load_model(f"models:/{name}@champion")
        assert list(champion.predict(pd.DataFrame({"x": [1.0, 5.0]}))) == pytest.approx([2.0, 10.0])
        assert int(client.get_model_version_by_alias(name, "champion").version) == 1

        client.set_registered_model_alias(name, "champion", "2")  # promotion moves the alias
        promoted = mlflow.pyfunc.load_model(f"models:/{name}@champion")
        assert list(promoted.predict(pd.DataFrame({"x": [1.0]}))) == pytest.approx([3.0])
    finally:
        client.delete_registered_model(name)
        client.delete_experiment(experiment)
