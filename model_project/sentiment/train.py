"""Review sentiment: TF-IDF + LogisticRegression on review_text, label from rating (>=4 positive,
<=2 negative, 3 dropped). Tracked with mlflow.sklearn.autolog(); logs test accuracy, F1 and a
confusion-matrix PNG. With no data file, SYNTHETIC reviews are generated (make_data.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import mlflow  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.compose import ColumnTransformer  # noqa: E402
from sklearn.feature_extraction.text import TfidfVectorizer  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import ConfusionMatrixDisplay, accuracy_score, f1_score  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402

from make_data import generate  # noqa: E402


def load(path: Path, rows: int, seed: int) -> pd.DataFrame:
    if not path.is_file():
        print(f"{path} not found: generating {rows} SYNTHETIC reviews")
        generate(path, rows=rows, seed=seed)
    df = pd.read_csv(path)
    missing = {"review_text", "rating"} - set(df.columns)
    if missing:
        raise SystemExit(f"{path}: missing column(s) {', '.join(sorted(missing))}")
    df = df.dropna(subset=["review_text", "rating"])
    df = df[df["rating"] != 3].copy()
    df["label"] = (df["rating"] >= 4).astype(int)
    return df


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="data/reviews.csv")
    ap.add_argument("--C", type=float, default=4.0)
    ap.add_argument("--max-features", type=float, default=20000)
    ap.add_argument("--test-size", type=float, default=0.25)
    ap.add_argument("--seed", type=float, default=42)
    ap.add_argument("--rows", type=float, default=1200)
    args = ap.parse_args()
    seed = int(args.seed)
    df = load(Path(args.data), int(args.rows), seed)
    x = df[["review_text"]]
    y = df["label"]
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=args.test_size, random_state=seed, stratify=y)
    model = Pipeline([
        ("features", ColumnTransformer([("tfidf", TfidfVectorizer(ngram_range=(1, 2), max_features=int(args.max_features), sublinear_tf=True), "review_text")])),
        ("clf", LogisticRegression(C=args.C, max_iter=1000, random_state=seed)),
    ])
    mlflow.sklearn.autolog(log_input_examples=True, log_model_signatures=True, silent=True)
    with mlflow.start_run():
        model.fit(x_train, y_train)
        pred = model.predict(x_test)
        acc = accuracy_score(y_test, pred)
        f1 = f1_score(y_test, pred)
        mlflow.log_metrics({"test_accuracy": acc, "test_f1": f1, "n_train": len(x_train), "n_test": len(x_test)})
        fig, ax = plt.subplots(figsize=(4, 4))
        ConfusionMatrixDisplay.from_predictions(y_test, pred, display_labels=["negative", "positive"], ax=ax, colorbar=False)
        ax.set_title(f"test accuracy {acc:.3f}")
        fig.tight_layout()
        mlflow.log_figure(fig, "confusion_matrix.png")
        print(f"test_accuracy={acc:.4f} test_f1={f1:.4f}")


if __name__ == "__main__":
    main()
