"""Training-only GRU layers: the same function and weights as stacked `keras.layers.GRU(reset_after=True)`
layers, with their own gradient, so that a training step on a CPU runs twice as fast.

Keras' GRU on a CPU runs its loop over time steps with two products per step (input and state),
and its gradient adds two more per step (to the state and to the weights), plus a slice and a
slice-gradient for every gate; one layer's loop ends before the next layer's starts, so the second
core has little to do. Here:
- the first layer's input projections are one large product before the loop, and every weight
  gradient one large product after it; the loops keep only the products that must run in order;
- the layers run as a wavefront: in one iteration of the time loop layer l takes step i − l, so the
  layers' steps are independent and TensorFlow runs them on different cores;
- with `matmul_dtype="bfloat16"` the products take bfloat16 operands (AMX or AVX-512 BF16 run them
  several times faster) while the state, the gates and every sum stay float32: the rounding of
  Keras' mixed precision, without its slow bfloat16 element-wise ops.
`bench/train_speed.py` measures it against plain `model.fit`; `tests/test_fused_gru.py` checks the
outputs and gradients against Keras' GRU.

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


def column_sums(x: tf.Tensor) -> tf.Tensor:
    """x (N, F) summed over N in float32, as a matrix-vector product: several times faster than
    reduce_sum's column reduction on a CPU."""
    return tf.cast(tf.matmul(tf.ones([1, tf.shape(x)[0]], x.dtype), x)[0], tf.float32)


def gru_stack(inputs: tf.Tensor, input_kernels: list[tf.Tensor], input_biases: list[tf.Tensor],
              recurrent_kernels: list[tf.Tensor], recurrent_biases: list[tf.Tensor],
              matmul_dtype: tf.DType = tf.float32, training: bool = True) -> tf.Tensor:
    """The last layer's states (T, B, H) of L stacked GRU layers on `inputs` (T, B, F), run as a wavefront.

    The first layer's inputs are projected for all steps at once (one large product), the other
    layers' step by step (`input_kernels`, `input_biases` (3H,) of every layer).
    In iteration i of the time loop layer l computes its step i − l from what the iteration before
    left: the layers' steps in one iteration do not depend on each other, so TensorFlow runs them
    on different cores (a stack one layer after the other has nothing to run beside its time loop).
    The gradient runs the same way backwards in time, the top layer one step ahead. Without
    `training` nothing is kept for it.
    """
    L = len(recurrent_kernels)
    product = _product(matmul_dtype)

    def stack(inputs, *weights):
        W, b = weights[:L], weights[L:2 * L]                                # layers 0..L−1
        U, c = weights[2 * L:3 * L], weights[3 * L:]
        steps, batch, width = tf.shape(inputs)[0], tf.shape(inputs)[1], inputs.shape[-1]
        H = U[0].shape[0]
        if inputs.shape[0] is not None and inputs.shape[0] < L:
            raise ValueError(f"a {L}-layer fused GRU needs sequences of at least {L} bytes")
        W_cast, U_cast = [tf.cast(w, matmul_dtype) for w in W], [tf.cast(u, matmul_dtype) for u in U]
        c_h = [bias[2 * H:] for bias in c]
        zr_bias = [tf.concat([bias[:2 * H], tf.zeros([H])], 0) for bias in c]   # σ's recurrent biases, input side
        layer_input_bias = [b[l] + zr_bias[l] for l in range(L)]
        flat_inputs = tf.cast(tf.reshape(inputs, [-1, width]), matmul_dtype)   # (T·B, F)
        projected = product(flat_inputs, W_cast[0]) + layer_input_bias[0]   # all of the first layer's steps at once
        first_inputs = tf.TensorArray(tf.float32, size=steps).unstack(tf.reshape(projected, [steps, batch, 3 * H]))

        def sequence(dtype=tf.float32):  # eager TensorArrays drop what was read unless told not to
            return tf.TensorArray(dtype, size=steps, clear_after_read=False)

        # Kept for the gradient: the gates, the state before each step (float32 for the element-wise
        # math, in matmul_dtype for the weight gradients) and each layer's output in matmul_dtype.
        kept = {k: tf.float32 for k in ("h", "z", "r", "n", "m_h")} | {"h_cast": matmul_dtype, "out_cast": matmul_dtype}
        saved = [{k: sequence(d) for k, d in (kept.items() if training else ())} for _ in range(L)]
        saved[L - 1]["out"] = sequence()

        def cast_product(a, b, **kw):    # operands already in matmul_dtype
            return tf.cast(tf.matmul(a, b, **kw), tf.float32)

        def cell(l, t, h, h_cast, below_cast, saved_l):
            """Layer l's step t from its state h and the layer below's output at t (l > 0); `_cast`:
            the same in matmul_dtype, cast once per step for every product that reads it."""
            p = first_inputs.read(t) if l == 0 else cast_product(below_cast, W_cast[l]) + layer_input_bias[l]
            p_zr, p_h = tf.split(p, [2 * H, H], 1)
            m_zr, m_h = tf.split(cast_product(h_cast, U_cast[l]), [2 * H, H], 1)
            m_h = m_h + c_h[l]
            z, r = tf.split(tf.sigmoid(p_zr + m_zr), 2, 1)
            n = tf.tanh(p_h + r * m_h)
            new = n + z * (h - n)
            new_cast = tf.cast(new, matmul_dtype)
            values = {"h": h, "h_cast": h_cast, "z": z, "r": r, "n": n, "m_h": m_h, "out": new, "out_cast": new_cast}
            return new, new_cast, {k: saved_l[k].write(t, values[k]) for k in saved_l}

        def wave(i, states, casts, saved, active):
            """Iteration i: every active layer l takes its step i − l, all from the iteration before."""
            new_states, new_casts, new_saved = list(states), list(casts), list(saved)
            for l in active:
                new_states[l], new_casts[l], new_saved[l] = cell(l, i - l, states[l], casts[l],
                                                                 casts[l - 1] if l else None, saved[l])
            return new_states, new_casts, new_saved

        states = [tf.zeros([batch, H]) for _ in range(L)]
        casts = [tf.zeros([batch, H], matmul_dtype) for _ in range(L)]
        for i in range(L - 1):                                                  # ramp up: layers 0..i
            states, casts, saved = wave(i, states, casts, saved, range(i + 1))

        def forward(i, states, casts, saved):
            states, casts, saved = wave(i, states, casts, saved, range(L))
            return i + 1, states, casts, saved

        _, states, casts, saved = tf.while_loop(lambda i, *_: i < steps, forward, (L - 1, states, casts, saved))
        for k in range(1, L):                                                   # ramp down: layers k..L−1
            states, casts, saved = wave(steps + k - 1, states, casts, saved, range(k, L))
        outputs = saved[L - 1]["out"].stack()                                   # (T, B, H)

        def gradient(d_outputs):
            from_above = tf.TensorArray(tf.float32, size=steps).unstack(d_outputs)
            grads = [{k: sequence(matmul_dtype) for k in ("dp", "dm")} for _ in range(L)]

            def back_cell(l, t, dh, d_in, grads_l):
                """Layer l's step t backwards: dh from its step t + 1, d_in from the layer above at t.
                The gradients of the products' inputs are kept in matmul_dtype, as the products read them."""
                dh = dh + (from_above.read(t) if l == L - 1 else d_in)
                z, r, n, m_h, h = (saved[l][k].read(t) for k in ("z", "r", "n", "m_h", "h"))
                dn = dh * (1.0 - z) * (1.0 - n * n)                                # through tanh
                dz = dh * (h - n) * z * (1.0 - z)                                  # through σ
                dr = dn * m_h * r * (1.0 - r)
                dz, dr, dn_cast, dm_h = (tf.cast(x, matmul_dtype) for x in (dz, dr, dn, dn * r))
                dp = tf.concat([dz, dr, dn_cast], 1)                               # (B, 3H): input projection
                dm = tf.concat([dz, dr, dm_h], 1)                                  # (B, 3H): recurrent product
                dh_previous = dh * z + cast_product(dm, U_cast[l], transpose_b=True)
                d_below = cast_product(dp, W_cast[l], transpose_b=True) if l else None
                return dh_previous, d_below, {"dp": grads_l["dp"].write(t, dp), "dm": grads_l["dm"].write(t, dm)}

            def back_wave(j, dhs, d_ins, grads, active):
                """Iteration j: layer l takes its step T − 1 − j + (L − 1 − l), with the gradient that
                the layer above sent down in the iteration before."""
                new_dhs, new_d_ins, new_grads = list(dhs), list(d_ins), list(grads)
                for l in active:
                    t = steps - 1 - j + (L - 1 - l)
                    new_dhs[l], below, new_grads[l] = back_cell(l, t, dhs[l], d_ins[l], grads[l])
                    if l:
                        new_d_ins[l - 1] = below
                return new_dhs, new_d_ins, new_grads

            dhs = [tf.zeros([batch, H]) for _ in range(L)]
            d_ins = [tf.zeros([batch, H]) for _ in range(L)]
            for j in range(L - 1):                                              # ramp up: layers L−1−j..L−1
                dhs, d_ins, grads = back_wave(j, dhs, d_ins, grads, range(L - 1 - j, L))

            def backward(j, dhs, d_ins, grads):
                dhs, d_ins, grads = back_wave(j, dhs, d_ins, grads, range(L))
                return j + 1, dhs, d_ins, grads

            _, dhs, d_ins, grads = tf.while_loop(lambda j, *_: j < steps, backward, (L - 1, dhs, d_ins, grads))
            for k in range(1, L):                                               # ramp down: layers 0..L−1−k
                dhs, d_ins, grads = back_wave(steps + k - 1, dhs, d_ins, grads, range(L - k))

            flat = lambda x: tf.reshape(x, [-1, x.shape[-1]])                    # noqa: E731
            dp = [flat(g["dp"].stack()) for g in grads]                          # (T·B, 3H) each
            dm = [flat(g["dm"].stack()) for g in grads]
            layer_inputs = [flat_inputs] + [flat(saved[l - 1]["out_cast"].stack()) for l in range(1, L)]
            d_W = [cast_product(layer_inputs[l], dp[l], transpose_a=True) for l in range(L)]
            d_b = [column_sums(dp[l]) for l in range(L)]
            d_inputs = tf.reshape(cast_product(dp[0], W_cast[0], transpose_b=True), [steps, batch, width])
            d_U = [cast_product(flat(saved[l]["h_cast"].stack()), dm[l], transpose_a=True) for l in range(L)]
            d_c = [column_sums(dm[l]) for l in range(L)]
            return (d_inputs, *d_W, *d_b, *d_U, *d_c)

        return outputs, gradient

    weights = (*input_kernels, *input_biases, *recurrent_kernels, *recurrent_biases)
    if training:
        return tf.custom_gradient(stack)(inputs, *weights)
    return stack(inputs, *weights)[0]


class FusedGRU(keras.layers.Layer):
    """`depth` stacked `keras.layers.GRU(units, return_sequences=True, reset_after=True)` on
    time-major input, trained as a wavefront (`gru_stack`); `layer_weights(i)` are layer i's
    (kernel, recurrent_kernel, bias), with Keras' shapes, order and initializers."""

    def __init__(self, units: int, depth: int, matmul_dtype: str = "float32", **kwargs) -> None:
        super().__init__(dtype="float32", **kwargs)
        self.units = units
        self.depth = depth
        self.matmul_dtype = matmul_dtype

    def build(self, input_shape) -> None:
        H, width = self.units, input_shape[-1]
        self.gru_weights = []
        for i in range(self.depth):
            self.gru_weights.append((
                self.add_weight(shape=(width, 3 * H), initializer="glorot_uniform", name=f"gru{i}_kernel"),
                self.add_weight(shape=(H, 3 * H), initializer="orthogonal", name=f"gru{i}_recurrent_kernel"),
                self.add_weight(shape=(2, 3 * H), initializer="zeros", name=f"gru{i}_bias")))
            width = H

    def layer_weights(self, i: int):
        return self.gru_weights[i]

    def call(self, inputs, training=None):
        tensors = [[tf.convert_to_tensor(v) for v in layer] for layer in self.gru_weights]
        return gru_stack(tf.cast(inputs, tf.float32), [k for k, _, _ in tensors], [b[0] for _, _, b in tensors],
                         [u for _, u, _ in tensors], [b[1] for _, _, b in tensors], tf.as_dtype(self.matmul_dtype),
                         training=bool(training))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "depth": self.depth, "matmul_dtype": self.matmul_dtype}
