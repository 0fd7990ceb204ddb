"""A local DashScope for wan2.1-vace-plus: as strict and as lenient as the service.

The test bed and the demo's default. `create_app(config)` is the FastAPI app;
`EmulatorServer(config)` runs it on loopback in a background thread.
"""

from vaceflow.emulator.app import create_app
from vaceflow.emulator.config import EmulatorConfig, FaultKind, SubmitFault
from vaceflow.emulator.server import EmulatorServer

__all__ = ["EmulatorConfig", "EmulatorServer", "FaultKind", "SubmitFault", "create_app"]
