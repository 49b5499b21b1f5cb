"""Hand-written runtime of ibkr_sdk, installed as `ibkr_sdk.lib`.

The generator never writes here. Generated modules call into this package (transport, request building, errors,
`Result`); overlays add the behaviours a catalogue entry cannot express.
"""
