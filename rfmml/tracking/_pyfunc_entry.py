"""Entry file of the rfmml pyfunc model (models-from-code): MLflow executes it on load."""

from mlflow.models import set_model

from rfmml.tracking.pyfunc import RFMMLPyfunc

set_model(RFMMLPyfunc())
