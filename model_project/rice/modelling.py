"""Rice grain classifier: a small Keras CNN on the Kaggle Rice Image Dataset layout
``DATA/{train,val,test}/<class>/*.jpg`` (Arborio, Basmati, Ipsala, Jasmine, Karacadag).

Tracked with ``mlflow.keras.autolog()`` (parameters, optimizer config, per-epoch loss/accuracy,
model summary) and ``mlflow.tensorflow.log_model``: the Keras model (``data/model.keras``) with a
signature, metadata (``classes``: the order of the output probabilities) and an input example
(``serving_input_example.json``: one test image per class as ``{"inputs": [[[[r, g, b], ...]]]}``,
0-255 pixel values; the model rescales itself). It also logs ``test_accuracy``, per-class
precision/recall/F1 as metrics and as ``classification_report.json``, ``classes.json``,
``confusion_matrix.png``, ``loss_curve.png`` and ``accuracy_curve.png``.

If ``--data-dir`` does not exist, SYNTHETIC images are generated there first (make_data.py): they
are drawn shapes, not photos of rice. Point ``--data-dir`` at the real, split Kaggle data to use it.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import mlflow  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from make_data import generate  # noqa: E402

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}


def load_split(root: Path, split: str, classes: list[str], size: int) -> tuple[np.ndarray, np.ndarray]:
    """Images of one split as float32 (n, size, size, 3) with 0-255 values, and int labels."""
    xs, ys = [], []
    for label, cls in enumerate(classes):
        folder = root / split / cls
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if folder.is_dir() else []
        for path in files:
            with Image.open(path) as im:
                im = im.convert("RGB")
                if im.size != (size, size):
                    im = im.resize((size, size), Image.BILINEAR)
                xs.append(np.asarray(im, dtype=np.float32))
            ys.append(label)
    if not xs:
        raise SystemExit(f"{root / split}: no images (expected {root}/{split}/<class>/*.jpg)")
    return np.stack(xs), np.asarray(ys, dtype=np.int64)


def find_classes(root: Path) -> list[str]:
    train = root / "train"
    classes = sorted(p.name for p in train.iterdir() if p.is_dir()) if train.is_dir() else []
    if len(classes) < 2:
        raise SystemExit(f"{train}: expected one folder per class, found {classes}")
    return classes


def build_model(size: int, n_classes: int, learning_rate: float, decay_steps: int = 0):
    """Four small 3x3 conv layers and global pooling (translation-invariant: grains sit anywhere).
    Pixels go in as 0-255; the model rescales. With ``decay_steps`` the learning rate follows a
    cosine decay to zero, so the last epoch (the logged model) is a settled one."""
    import keras
    from keras import layers

    model = keras.Sequential(
        [
            keras.Input(shape=(size, size, 3), name="image"),
            layers.Rescaling(1.0 / 255),
            layers.Conv2D(16, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(),
            layers.Conv2D(32, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(),
            layers.Conv2D(48, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(),
            layers.Conv2D(64, 3, padding="same", activation="relu"),
            layers.GlobalAveragePooling2D(),
            layers.Dense(n_classes, activation="softmax", name="probabilities"),
        ],
        name="rice_cnn",
    )
    lr = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps) if decay_steps else learning_rate
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=lr),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def pip_requirements() -> list[str]:
    """The model's requirements, pinned to what trained it. Listed here instead of inferred: MLflow's
    inference loads the model again in a subprocess (about 20 s), and it lists both tensorflow and
    tensorflow-cpu when only the CPU wheel is installed."""
    from importlib.metadata import PackageNotFoundError, version

    reqs = [f"mlflow=={mlflow.__version__}"]
    for dist in ("tensorflow-cpu", "tensorflow", "keras", "numpy"):
        try:
            reqs.append(f"{dist}=={version(dist)}")
        except PackageNotFoundError:
            continue
    return reqs


def plot_curve(history: dict, key: str) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    epochs = range(1, len(history[key]) + 1)
    ax.plot(epochs, history[key], marker=".", label="train")
    if f"val_{key}" in history:
        ax.plot(epochs, history[f"val_{key}"], marker=".", label="validation")
    ax.set_xlabel("epoch")
    ax.set_title(key)
    ax.legend()
    fig.tight_layout()
    return fig


def _int(text: str) -> int:
    """MLproject passes numbers as given; accept '12' and '12.0'."""
    return int(float(text))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default="data")
    ap.add_argument("--epochs", type=_int, default=12)
    ap.add_argument("--batch-size", type=_int, default=32)
    ap.add_argument("--image-size", type=_int, default=48)
    ap.add_argument("--learning-rate", type=float, default=0.003)
    ap.add_argument("--images-per-class", type=_int, default=240, help="only used to generate synthetic data")
    ap.add_argument("--seed", type=_int, default=42)
    args = ap.parse_args()

    import keras
    from sklearn.metrics import ConfusionMatrixDisplay, classification_report, confusion_matrix

    root = Path(args.data_dir)
    if not root.exists():
        print(f"{root} not found: generating SYNTHETIC rice images ({args.images_per_class} per class)")
        generate(root, images_per_class=args.images_per_class, size=max(args.image_size, 64), seed=args.seed)
    synthetic = (root / "SYNTHETIC.txt").is_file()
    classes = find_classes(root)
    x_train, y_train = load_split(root, "train", classes, args.image_size)
    x_val, y_val = load_split(root, "val", classes, args.image_size)
    x_test, y_test = load_split(root, "test", classes, args.image_size)
    order = np.random.default_rng(args.seed).permutation(len(x_train))  # mixed classes, also in the input example
    x_train, y_train = x_train[order], y_train[order]
    print(f"{len(classes)} classes {classes}; train {len(x_train)}, val {len(x_val)}, test {len(x_test)} images of {args.image_size}px")

    keras.utils.set_random_seed(args.seed)
    # Parameters, optimizer config, per-epoch metrics and the model summary come from Keras 3
    # autologging. The model itself is logged below with an input example: mlflow.keras.autolog()
    # logs none, and mlflow.tensorflow.autolog() needs the tensorboard package (tensorflow-cpu
    # 2.16+ no longer installs it) for the TensorBoard callback it always adds.
    mlflow.keras.autolog(log_models=False, log_datasets=True, silent=True)
    with mlflow.start_run():
        if not os.environ.get("MLFLOW_RUN_ID"):  # run by hand: MLflow Projects logs the CLI parameters itself
            mlflow.log_params({"data_dir": str(root), "image_size": args.image_size, "learning_rate": args.learning_rate,
                               "images_per_class": args.images_per_class, "seed": args.seed})
        mlflow.log_params({"synthetic_data": synthetic, "classes": ",".join(classes)})
        steps = args.epochs * -(-len(x_train) // args.batch_size)
        model = build_model(args.image_size, len(classes), args.learning_rate, decay_steps=steps)
        started = time.monotonic()
        history = model.fit(
            x_train,
            y_train,
            batch_size=args.batch_size,
            epochs=args.epochs,
            validation_data=(x_val, y_val),
            verbose=2,
        )
        fit_seconds = time.monotonic() - started

        proba = model.predict(x_test, batch_size=256, verbose=0)
        pred = proba.argmax(axis=1)
        acc = float((pred == y_test).mean())
        report = classification_report(y_test, pred, labels=list(range(len(classes))), target_names=classes,
                                        output_dict=True, zero_division=0)

        # The input example (serving_input_example.json, {"inputs": [...]}) is one test image per
        # class, in class order: the smoke test of the serving image posts it.
        keras.utils.disable_interactive_logging()  # no progress bars from the predict() calls of log_model
        example = np.stack([x_test[np.flatnonzero(y_test == k)[0]] for k in range(len(classes)) if (y_test == k).any()])
        logged = mlflow.tensorflow.log_model(
            model,
            name="model",
            input_example=example,
            pip_requirements=pip_requirements(),
            metadata={"classes": classes, "image_size": args.image_size,
                      "input": "float32 RGB pixels 0-255, shape (n, image_size, image_size, 3)",
                      "output": "class probabilities, one column per class in 'classes' order",
                      "synthetic_data": synthetic},
        )

        metrics = {"test_accuracy": acc, "fit_seconds": fit_seconds, "n_train": len(x_train), "n_test": len(x_test)}
        for cls in classes:
            for key in ("precision", "recall", "f1-score"):
                metrics[f"test_{key.replace('-score', '')}_{cls}"] = float(report[cls][key])
        metrics["test_f1_macro"] = float(report["macro avg"]["f1-score"])
        mlflow.log_metrics(metrics, model_id=logged.model_id)
        mlflow.log_dict(report, "classification_report.json")
        mlflow.log_dict({"classes": classes, "output": "probabilities, one column per class in this order"}, "classes.json")

        fig, ax = plt.subplots(figsize=(5.5, 5))
        ConfusionMatrixDisplay(confusion_matrix(y_test, pred, labels=list(range(len(classes)))), display_labels=classes).plot(
            ax=ax, colorbar=False, xticks_rotation=45)
        ax.set_title(f"test accuracy {acc:.3f}" + (" (synthetic data)" if synthetic else ""))
        fig.tight_layout()
        mlflow.log_figure(fig, "confusion_matrix.png")
        plt.close(fig)
        for key in ("loss", "accuracy"):
            fig = plot_curve(history.history, key)
            mlflow.log_figure(fig, f"{key}_curve.png")
            plt.close(fig)
        print(f"test_accuracy={acc:.4f} test_f1_macro={metrics['test_f1_macro']:.4f} fit_seconds={fit_seconds:.1f}")
        print(json.dumps({c: round(report[c]["f1-score"], 3) for c in classes}))


if __name__ == "__main__":
    main()
