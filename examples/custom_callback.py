"""A callback of one's own: record the learning rate and the weights' norm after every epoch,
and stop once the training accuracy reaches 97 %.

    python examples/custom_callback.py
"""

import numpy as np

import fastnn
from fastnn.layers import Dense


class Recorder(fastnn.Callback):
    """fit calls the hooks; self.model is the model, self.params has "epochs" and "steps"."""

    def __init__(self, target_accuracy):
        self.target_accuracy, self.rows = target_accuracy, []

    def on_epoch_end(self, epoch, logs=None):
        norm = float(np.sqrt(sum(np.sum(w * w) for w in self.model.get_weights())))
        self.rows.append((epoch + 1, self.model.optimizer.lr, norm, logs["accuracy"]))
        if logs["accuracy"] >= self.target_accuracy:
            self.model.stop_training = True  # ends training after this epoch


x_train, y_train, x_test, y_test = fastnn.datasets.moons(n_samples=2000)
model = fastnn.Sequential([Dense(16, "relu"), Dense(16, "relu"), Dense(1, "sigmoid")], seed=0)
model.compile(fastnn.optimizers.Adam(fastnn.schedules.ExponentialDecay(0.02, 100, 0.9)), "binary_crossentropy")
recorder = Recorder(0.97)
model.fit(x_train, y_train, epochs=500, batch_size=64, callbacks=[recorder], verbose=0)
for epoch, lr, norm, accuracy in recorder.rows[-3:]:
    print(f"epoch {epoch}: lr {lr:.5f}, |weights| {norm:.2f}, accuracy {accuracy:.4f}")
assert recorder.rows[-1][3] >= 0.97 and len(recorder.rows) < 500
