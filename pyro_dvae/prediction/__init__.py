"""Video prediction in latent space for every family: DSA rolls its own LSTM prior forward; the
DVAE and DrNet use a latent predictor trained as a second stage (``pyro-dvae train-predictor``).
``pyro-dvae predict`` writes predictions, long roll-outs and per-step PSNR / SSIM."""

from .forecast import dynamics_predictor, forecast, predict_report, prediction_metrics
from .predictor import (
    PREDICTOR_FILE,
    LatentPredictor,
    PredictorConfig,
    load_predictor,
    resume_predictor,
    train_predictor,
)

__all__ = ["LatentPredictor", "PREDICTOR_FILE", "PredictorConfig", "dynamics_predictor",
           "forecast", "load_predictor", "predict_report", "prediction_metrics", "resume_predictor",
           "train_predictor"]
