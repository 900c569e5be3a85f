"""The tenancy extension, made once and initialised on the app in app.py (factory style)."""

from flask_tenants.aio import QuartTenants
from public.models import Domain, Tenant

tenancy = QuartTenants(tenant_model=Tenant, domain_model=Domain, tenant_url_prefix="/_tenant")
