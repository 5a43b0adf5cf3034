"""Settings, one module per concern; environment variables are read only in ``env``."""

from .api import *  # noqa: F403
from .base import *  # noqa: F403
from .database import *  # noqa: F403
from .security import *  # noqa: F403
from .tasks import *  # noqa: F403
from .tessera import *  # noqa: F403
