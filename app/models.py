"""Every models module, imported once so SQLAlchemy's metadata (and Alembic) knows every table.
Each domain adds its own line."""
from app.audit import models as audit_models  # noqa: F401
from app.auth import models as auth_models  # noqa: F401
from app.auth import tokens as token_models  # noqa: F401
from app.complaints import models as complaint_models  # noqa: F401
from app.crm import models as crm_models  # noqa: F401
from app.interactions import models as interaction_models  # noqa: F401
from app.portal import models as portal_models  # noqa: F401
from app.webhooks import models as webhook_models  # noqa: F401
from app.reports import models as reports_models  # noqa: F401
from app.channels.email import models as email_models  # noqa: F401
from ivr import models as ivr_models  # noqa: F401
from app.channels import chat_models  # noqa: F401
from queues import models as routing_models  # noqa: F401
