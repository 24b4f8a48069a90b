"""A training-only GRU layer: the same function and weights as `keras.layers.GRU(reset_after=True)`,
with its own gradient, so that a training step does fewer, larger matrix products and fewer small ops.

Keras' GRU on a CPU runs its loop over time steps with two products per step (input and state),
and its gradient adds two more per step (to the state and to the weights), plus a slice and a
slice-gradient for every gate. Here the input projections of all time steps are one large product
before the loop, the weight gradients large products after it, and the loops keep only the state
products that must run in order, on gate blocks split once, before the loop.

With `matmul_dtype="bfloat16"` the products take bfloat16 operands (AMX or AVX-512 BF16 run them
several times faster) while the state, the gates and every sum stay float32: the rounding is that of
Keras' mixed precision, without its slow bfloat16 element-wise ops.

Time-major: (T, B, F) in, (T, B, H) out, zero initial state. Gate order (z, r, h), as in Keras:
    z = σ(x·Wz + bz + h·Uz + cz)    r = σ(x·Wr + br + h·Ur + cr)
    n = tanh(x·Wh + bh + r ⊙ (h·Uh + ch))    h' = n + z ⊙ (h − n)
"""
from __future__ import annotations

import keras
import tensorflow as tf


def _product(matmul_dtype: tf.DType):
    """a @ b with `b` already in `matmul_dtype`; float32 in and out."""
    if matmul_dtype == tf.float32:
        return tf.matmul
    return lambda a, b, **kw: tf.cast(tf.matmul(tf.cast(a, matmul_dtype), b, **kw), tf.float32)


def gru_recurrence(x_zr: tf.Tensor, x_h: tf.Tensor, recurrent_kernel: tf.Tensor, recurrent_bias: tf.Tensor,
                   matmul_dtype: tf.DType = tf.float32, step_dtype: tf.DType = tf.float32) -> tf.Tensor:
    """States (T, B, H) from the input projections of the z, r gates (T, B, 2H) and of the candidate
    (T, B, H), which already hold the input bias. The products inside the time loops take
    `step_dtype` operands, the large ones after them `matmul_dtype`."""
    product, step_product = _product(matmul_dtype), _product(step_dtype)

    @tf.custom_gradient
    def recurrence(x_zr, x_h, recurrent_kernel, recurrent_bias):
        steps, batch = tf.shape(x_h)[0], tf.shape(x_h)[1]
        H = recurrent_kernel.shape[0]
        u_zr, u_z, u_r, u_h = (tf.cast(recurrent_kernel[:, a:b], step_dtype)
                               for a, b in ((0, 2 * H), (0, H), (H, 2 * H), (2 * H, 3 * H)))
        c_h = recurrent_bias[2 * H:]
        inputs_zr = tf.TensorArray(tf.float32, size=steps).unstack(x_zr + recurrent_bias[:2 * H])
        inputs_h = tf.TensorArray(tf.float32, size=steps).unstack(x_h)

        def sequence():                  # eager TensorArrays drop what was read unless told not to
            return tf.TensorArray(tf.float32, size=steps, clear_after_read=False)

        def forward(t, h, states, previous, updates, resets, candidates, recurrent):
            z, r = tf.split(tf.sigmoid(inputs_zr.read(t) + step_product(h, u_zr)), 2, axis=1)   # (B, H) each
            m_h = step_product(h, u_h) + c_h
            n = tf.tanh(inputs_h.read(t) + r * m_h)
            new = n + z * (h - n)
            return (t + 1, new, states.write(t, new), previous.write(t, h), updates.write(t, z),
                    resets.write(t, r), candidates.write(t, n), recurrent.write(t, m_h))

        _, _, states, previous, updates, resets, candidates, recurrent = tf.while_loop(
            lambda t, *_: t < steps, forward, (0, tf.zeros([batch, H]), *(sequence() for _ in range(6))))
        outputs = states.stack()                                                  # (T, B, H)

        def gradient(d_outputs):
            d_states = tf.TensorArray(tf.float32, size=steps).unstack(d_outputs)

            def backward(t, dh, d_updates, d_resets, d_candidates, d_recurrent):
                dh = dh + d_states.read(t)
                z, r, n, m_h, h = (a.read(t) for a in (updates, resets, candidates, recurrent, previous))
                dn = dh * (1.0 - z) * (1.0 - n * n)                                  # through tanh
                dz = dh * (h - n) * z * (1.0 - z)                                    # through σ
                dr = dn * m_h * r * (1.0 - r)
                dm_h = dn * r
                dh_previous = (dh * z + step_product(dz, u_z, transpose_b=True) + step_product(dr, u_r, transpose_b=True)
                               + step_product(dm_h, u_h, transpose_b=True))
                return (t - 1, dh_previous, d_updates.write(t, dz), d_resets.write(t, dr), d_candidates.write(t, dn),
                        d_recurrent.write(t, dm_h))

            _, _, d_updates, d_resets, d_candidates, d_recurrent = tf.while_loop(
                lambda t, *_: t >= 0, backward, (steps - 1, tf.zeros([batch, H]), *(sequence() for _ in range(4))))
            d_zr = tf.concat([d_updates.stack(), d_resets.stack()], 2)                # (T, B, 2H)
            dm = tf.reshape(tf.concat([d_zr, d_recurrent.stack()], 2), [-1, 3 * H])  # (T·B, 3H)
            d_kernel = product(tf.reshape(previous.stack(), [-1, H]), tf.cast(dm, matmul_dtype), transpose_a=True)
            return d_zr, d_candidates.stack(), d_kernel, tf.reduce_sum(dm, 0)

        return outputs, gradient

    return recurrence(x_zr, x_h, recurrent_kernel, recurrent_bias)


class FusedGRU(keras.layers.Layer):
    """`keras.layers.GRU(units, return_sequences=True, reset_after=True)` on time-major input, for
    training with the TensorFlow backend; its weights (kernel, recurrent_kernel, bias) have the
    same shapes, order and initializers, so they move to and from a Keras GRU unchanged."""

    def __init__(self, units: int, matmul_dtype: str = "float32", step_dtype: str = "float32", **kwargs) -> None:
        super().__init__(dtype="float32", **kwargs)
        self.units = units
        self.matmul_dtype = matmul_dtype
        self.step_dtype = step_dtype

    def build(self, input_shape) -> None:
        H = self.units
        self.kernel = self.add_weight(shape=(input_shape[-1], 3 * H), initializer="glorot_uniform", name="kernel")
        self.recurrent_kernel = self.add_weight(shape=(H, 3 * H), initializer="orthogonal",
                                                name="recurrent_kernel")
        self.bias = self.add_weight(shape=(2, 3 * H), initializer="zeros", name="bias")

    def call(self, inputs):
        matmul_dtype = tf.as_dtype(self.matmul_dtype)
        inputs = tf.cast(inputs, tf.float32)
        steps, batch = tf.shape(inputs)[0], tf.shape(inputs)[1]
        flat = tf.reshape(inputs, [-1, inputs.shape[-1]])
        bias = tf.convert_to_tensor(self.bias)
        projected = _product(matmul_dtype)(flat, tf.cast(self.kernel, matmul_dtype)) + bias[0]  # all steps at once
        x_zr, x_h = tf.split(tf.reshape(projected, [steps, batch, 3 * self.units]), [2 * self.units, self.units], 2)
        return gru_recurrence(x_zr, x_h, tf.convert_to_tensor(self.recurrent_kernel), bias[1], matmul_dtype,
                              tf.as_dtype(self.step_dtype))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "matmul_dtype": self.matmul_dtype, "step_dtype": self.step_dtype}
