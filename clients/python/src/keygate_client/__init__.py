"""A Python client for keygate, the key-management gateway.

`connect()` opens a `Client`; its methods cover the common calls and raise `KeygateError`
with the gateway's stable ErrorInfo reason. The generated stubs are the `keygate.v1`
package, built from proto/ by clients/python/build.py.
"""

from .client import Client, Period, connect
from .errors import ERROR_DOMAIN, KeygateError

__all__ = ["Client", "ERROR_DOMAIN", "KeygateError", "Period", "connect"]
