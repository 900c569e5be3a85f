import os


class Config:
    # a plain postgresql:// URL is served by asyncpg (postgresql+asyncpg://)
    SQLALCHEMY_DATABASE_URI = os.environ.get("DATABASE_URL")
    TENANTS_ENGINE_OPTIONS = {"pool_pre_ping": True, "pool_recycle": 3600}
    # hosts served from the public schema besides www.*, localhost and local.*
    TENANTS_PUBLIC_DOMAINS = os.environ.get("PUBLIC_DOMAINS", "example.com").split(",")
