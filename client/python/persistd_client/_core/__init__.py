"""Client core: each endpoint defined once, and what the sync and async send loops share."""
