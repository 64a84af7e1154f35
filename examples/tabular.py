"""Tabular data with categories: scikit-learn's breast-cancer measurements (30 numeric
columns) plus two categorical columns, "clinic" (12 values) and "scanner" (5 values), drawn
so that they carry part of the signal, as a hospital's records would. The numeric columns go
through a Dense layer, each category through an Embedding; Concatenate joins them, and
BatchNormalization and Dropout sit in the head. A numeric-only network is the baseline.

    python examples/tabular.py
"""

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split

import fastnn
from fastnn.layers import BatchNormalization, Concatenate, Dense, Dropout, Embedding, Flatten

rng = np.random.default_rng(0)
numbers, label = load_breast_cancer(return_X_y=True)
numbers = numbers + rng.normal(0, 1.5, numbers.shape) * numbers.std(axis=0)  # blur the measurements: harder
clinic = np.where(rng.random(label.size) < 0.7, label * 6 + rng.integers(0, 6, label.size), rng.integers(0, 12, label.size))
scanner = rng.integers(0, 5, label.size)  # no signal: the model must learn to ignore it
split = train_test_split(numbers, np.stack([clinic, scanner], axis=1), label, test_size=0.3, random_state=0,
                         stratify=label)
num_train, num_test, cat_train, cat_test, y_train, y_test = split
mean, std = num_train.mean(axis=0), num_train.std(axis=0)
num_train, num_test = (num_train - mean) / std, (num_test - mean) / std


def network(with_categories: bool) -> fastnn.Model:
    measured = fastnn.Input(shape=(30,), name="measured")
    h = Dense(32, "relu")(measured)
    inputs = [measured]
    if with_categories:
        clinic_id = fastnn.Input(shape=(), dtype="int64", name="clinic")
        scanner_id = fastnn.Input(shape=(), dtype="int64", name="scanner")
        h = Concatenate()([h, Embedding(12, 4)(clinic_id), Embedding(5, 2)(scanner_id)])
        inputs += [clinic_id, scanner_id]
    h = Dropout(0.2)(Dense(16, "relu")(BatchNormalization()(h)))
    return fastnn.Model(inputs, Dense(1, "sigmoid")(h), seed=0)


def columns(num, cat, with_categories):
    return {"measured": num, "clinic": cat[:, 0], "scanner": cat[:, 1]} if with_categories else num


accuracy = {}
for with_categories in (False, True):
    model = network(with_categories)
    model.compile(fastnn.optimizers.Adam(3e-3), "binary_crossentropy")
    stop = fastnn.EarlyStopping("val_loss", patience=15, restore_best_weights=True)
    model.fit(columns(num_train, cat_train, with_categories), y_train, epochs=200, batch_size=32, verbose=0,
              validation_split=0.2, callbacks=[stop])
    accuracy[with_categories] = model.evaluate(columns(num_test, cat_test, with_categories), y_test)["accuracy"]
model.summary()
print(f"test accuracy: numeric columns only {accuracy[False]:.3f}, with the embedded categories {accuracy[True]:.3f}")
assert accuracy[True] > accuracy[False] + 0.01 and accuracy[True] > 0.85, accuracy
