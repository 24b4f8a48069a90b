"""The model: its config and files, the vocabulary (bytes), the registry of named models, and the
GRUs that run it (numpy, TensorFlow). What the editor loads; never imports TensorFlow unless asked
for the TensorFlow backend."""
