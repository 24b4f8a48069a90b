"""Training (the only part that imports TensorFlow, with the TensorFlow backend): the Keras model and
the fused GRU, tf.data input, multi-machine training, held-out evaluation, averaging, the corpus,
progress reports."""
