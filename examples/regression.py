"""A regression: scikit-learn's diabetes data, standardised, a small MLP with mean squared
error, an L2 penalty and early stopping on a validation split, the mean absolute error as a
metric; prints the test R².

    python examples/regression.py
"""

import numpy as np
from sklearn.datasets import load_diabetes
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import train_test_split

import fastnn
from fastnn.layers import Dense

x, y = load_diabetes(return_X_y=True)
x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=0)
mean, std = x_train.mean(axis=0), x_train.std(axis=0)
x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
y_mean, y_std = y_train.mean(), y_train.std()
model = fastnn.Sequential([Dense(16, "relu", kernel_regularizer=fastnn.regularizers.L2(1e-3)), Dense(1)], seed=0)
model.compile(fastnn.optimizers.Adam(0.003), "mse", metrics=["mae"])
stop = fastnn.EarlyStopping("val_loss", patience=10, restore_best_weights=True)
model.fit(x_train, (y_train - y_mean) / y_std, epochs=300, batch_size=32, validation_split=0.2, callbacks=[stop],
          verbose=0)
predicted = fastnn.to_numpy(model.predict(x_test))[:, 0] * y_std + y_mean
r2 = 1 - np.sum((y_test - predicted) ** 2) / np.sum((y_test - y_test.mean()) ** 2)
linear = LinearRegression().fit(x_train, y_train).score(x_test, y_test)  # the baseline to beat, or nearly
print(f"test R² {r2:.3f} (linear regression: {linear:.3f}), mean absolute error {np.mean(np.abs(y_test - predicted)):.1f}")
assert r2 > linear - 0.1
