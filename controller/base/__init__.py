"""The bottom layer: small parts every other layer may use, importing nothing of the controller."""
