"""The sentiment model's steps as plain functions, shared by the MLflow entry point (train.py) and
the DVC pipeline (dvc.yaml: ``python stages.py prepare|train|evaluate``, settings in params.yaml).

Labels come from the rating: >= 4 positive, <= 2 negative, 3 dropped. The model is TF-IDF +
LogisticRegression, optionally soft-voted with a RandomForest (``ensemble``). The data is
SYNTHETIC (make_data.py), see README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
from pathlib import Path

import pandas as pd
import yaml

TEXT, RATING, LABEL = "review_text", "rating", "label"
PREPARED = Path("data/prepared")
MODEL = Path("models/model.pkl")
METRICS = Path("metrics/eval.json")
CONFUSION = Path("metrics/confusion_matrix.png")


def label(df: pd.DataFrame, min_length: int = 0) -> pd.DataFrame:
    """Rows with a text and a rating, rating 3 dropped, texts shorter than min_length dropped, and a
    0/1 label column."""
    missing = {TEXT, RATING} - set(df.columns)
    if missing:
        raise SystemExit(f"missing column(s) {', '.join(sorted(missing))}")
    df = df.dropna(subset=[TEXT, RATING])
    df = df[(df[RATING] != 3) & (df[TEXT].astype(str).str.strip().str.len() >= min_length)].copy()
    df[LABEL] = (df[RATING] >= 4).astype(int)
    return df


def split(df: pd.DataFrame, test_size: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    from sklearn.model_selection import train_test_split

    return train_test_split(df, test_size=test_size, random_state=seed, stratify=df[LABEL])


def build_model(C: float = 4.0, max_features: int = 20000, ngram_max: int = 2, ensemble: bool = False,
                n_estimators: int = 100, seed: int = 42):
    """An sklearn Pipeline over a DataFrame with a review_text column (what the served model gets)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier, VotingClassifier
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    tfidf = TfidfVectorizer(ngram_range=(1, int(ngram_max)), max_features=int(max_features), sublinear_tf=True)
    clf = LogisticRegression(C=C, max_iter=1000, random_state=seed)
    if ensemble:
        forest = RandomForestClassifier(n_estimators=int(n_estimators), random_state=seed, n_jobs=1)
        clf = VotingClassifier([("lr", clf), ("rf", forest)], voting="soft")
    return Pipeline([("features", ColumnTransformer([("tfidf", tfidf, TEXT)])), ("clf", clf)])


def scores(y_true, y_pred) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score

    return {"accuracy": float(accuracy_score(y_true, y_pred)), "f1": float(f1_score(y_true, y_pred))}


def confusion_figure(y_true, y_pred, title: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    fig, ax = plt.subplots(figsize=(4, 4))
    ConfusionMatrixDisplay.from_predictions(y_true, y_pred, display_labels=["negative", "positive"], ax=ax, colorbar=False)
    ax.set_title(title)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------------ DVC stages


def read_params(path: Path = Path("params.yaml")) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


def prepare(params: dict) -> None:
    p = params["prepare"]
    df = label(pd.read_csv(p.get("data", "data/reviews.csv")), int(p.get("min_length", 0)))
    train, test = split(df, float(p["test_size"]), int(p["seed"]))
    PREPARED.mkdir(parents=True, exist_ok=True)
    train.to_csv(PREPARED / "train.csv", index=False)
    test.to_csv(PREPARED / "test.csv", index=False)
    print(f"prepare: {len(train)} train / {len(test)} test rows")


def train(params: dict) -> None:
    p = params["train"]
    df = pd.read_csv(PREPARED / "train.csv")
    model = build_model(C=float(p["C"]), max_features=int(p["max_features"]), ngram_max=int(p["ngram_max"]),
                        ensemble=bool(p["ensemble"]), n_estimators=int(p.get("n_estimators", 100)), seed=int(p["seed"]))
    model.fit(df[[TEXT]], df[LABEL])
    MODEL.parent.mkdir(parents=True, exist_ok=True)
    with open(MODEL, "wb") as fh:
        pickle.dump(model, fh)
    print(f"train: {MODEL} on {len(df)} rows")


def evaluate(params: dict) -> None:
    df = pd.read_csv(PREPARED / "test.csv")
    with open(MODEL, "rb") as fh:
        model = pickle.load(fh)  # noqa: S301 - the model this pipeline just wrote
    pred = model.predict(df[[TEXT]])
    metrics = scores(df[LABEL], pred) | {"n_test": len(df)}
    METRICS.parent.mkdir(parents=True, exist_ok=True)
    METRICS.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    fig = confusion_figure(df[LABEL], pred, f"test accuracy {metrics['accuracy']:.3f}")
    fig.savefig(CONFUSION)
    if os.environ.get("MLFLOW_TRACKING_URI"):  # log to MLflow only when a tracking server is configured
        import mlflow

        with mlflow.start_run(run_name="dvc-evaluate"):
            mlflow.log_params({f"{section}.{k}": v for section in ("prepare", "train") for k, v in params.get(section, {}).items()})
            mlflow.log_metrics({"test_accuracy": metrics["accuracy"], "test_f1": metrics["f1"]})
            mlflow.log_figure(fig, "confusion_matrix.png")
    print(f"evaluate: accuracy={metrics['accuracy']:.4f} f1={metrics['f1']:.4f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="One DVC stage of the sentiment pipeline (settings in params.yaml).")
    ap.add_argument("stage", choices=["prepare", "train", "evaluate"])
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = ap.parse_args()
    {"prepare": prepare, "train": train, "evaluate": evaluate}[args.stage](read_params(args.params))
