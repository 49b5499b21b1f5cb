"""Hand-written runtime of ibkr_sdk, installed as `ibkr_sdk.lib`.

The generator never writes here. Generated modules call into this package (transport, request building, errors,
`Result`); overlays add the behaviours a catalogue entry cannot express.
"""

import logging as _logging

# A library adds no output of its own: without this, warnings would reach stderr through logging's last resort
# whenever the application has not configured logging.
_logger = _logging.getLogger("ibkr_sdk")
if not any(isinstance(h, _logging.NullHandler) for h in _logger.handlers):
    _logger.addHandler(_logging.NullHandler())
