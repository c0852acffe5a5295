"""Review sentiment: TF-IDF + LogisticRegression on review_text (optionally soft-voted with a
RandomForest: --ensemble true), label from rating (>=4 positive, <=2 negative, 3 dropped). Tracked
with mlflow.sklearn.autolog(); logs test accuracy, F1 and a confusion-matrix PNG. With no data file,
SYNTHETIC reviews are generated (make_data.py). The same steps run as a DVC pipeline: dvc.yaml."""

from __future__ import annotations

import argparse
from pathlib import Path

import mlflow
import pandas as pd

from make_data import generate
from stages import build_model, confusion_figure, label, scores, split


def load(path: Path, rows: int, seed: int) -> pd.DataFrame:
    if not path.is_file():
        print(f"{path} not found: generating {rows} SYNTHETIC reviews")
        generate(path, rows=rows, seed=seed)
    try:
        return label(pd.read_csv(path))
    except SystemExit as exc:
        raise SystemExit(f"{path}: {exc}") from None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="data/reviews.csv")
    ap.add_argument("--C", type=float, default=4.0)
    ap.add_argument("--max-features", type=float, default=20000)
    ap.add_argument("--test-size", type=float, default=0.25)
    ap.add_argument("--seed", type=float, default=42)
    ap.add_argument("--rows", type=float, default=1200)
    ap.add_argument("--ngram-max", type=float, default=2)
    ap.add_argument("--ensemble", choices=["true", "false"], default="false")
    args = ap.parse_args()
    seed = int(args.seed)
    df = load(Path(args.data), int(args.rows), seed)
    train, test = split(df, args.test_size, seed)
    model = build_model(C=args.C, max_features=int(args.max_features), ngram_max=int(args.ngram_max),
                        ensemble=args.ensemble == "true", seed=seed)
    mlflow.sklearn.autolog(log_input_examples=True, log_model_signatures=True, silent=True)
    with mlflow.start_run():
        model.fit(train[["review_text"]], train["label"])
        pred = model.predict(test[["review_text"]])
        m = scores(test["label"], pred)
        mlflow.log_metrics({"test_accuracy": m["accuracy"], "test_f1": m["f1"], "n_train": len(train), "n_test": len(test)})
        mlflow.log_figure(confusion_figure(test["label"], pred, f"test accuracy {m['accuracy']:.3f}"), "confusion_matrix.png")
        print(f"test_accuracy={m['accuracy']:.4f} test_f1={m['f1']:.4f}")


if __name__ == "__main__":
    main()
