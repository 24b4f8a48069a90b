"""What the model is told beyond its weights: the context's matches and word votes, the buffer's
own words, the corpus n-gram, the mixer that combines them, and the weights learned as you type."""
