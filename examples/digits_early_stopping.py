"""A digits classifier with a validation split and early stopping: stops when the validation
loss has not improved for 5 epochs and keeps the best weights; saves them.

    python examples/digits_early_stopping.py
"""

import fastnn
from fastnn.layers import Dense, Dropout

x_train, y_train, x_test, y_test = fastnn.datasets.digits()          # 8x8 digits, labels 0-9
model = fastnn.Sequential([Dense(64, "relu"), Dropout(0.2), Dense(10, "softmax")], seed=0)
model.compile(fastnn.optimizers.Adam(0.003), "sparse_categorical_crossentropy")
stop = fastnn.EarlyStopping("val_loss", patience=5, restore_best_weights=True)
history = model.fit(x_train, y_train, epochs=300, batch_size=32, validation_split=0.2, callbacks=[stop], verbose=0)
metrics = model.evaluate(x_test, y_test)
print(f"stopped after {len(history.epoch)} epochs; test accuracy {metrics['accuracy']:.4f}")
model.save("digits.npz")
assert metrics["accuracy"] > 0.9 and len(history.epoch) < 300
