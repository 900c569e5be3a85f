from quart import jsonify

from flask_tenants.aio import TenantActivationError, TenantNotFoundError


def register_error_handlers(app):
    @app.errorhandler(TenantNotFoundError)
    async def handle_tenant_not_found(error):
        response = jsonify(
            {"error": "TenantNotFoundError", "message": "The requested tenant was not found."}
        )
        response.status_code = 404
        return response

    @app.errorhandler(TenantActivationError)
    async def handle_tenant_activation_error(error):
        response = jsonify(
            {"error": "TenantActivationError", "message": "The requested tenant is deactivated."}
        )
        response.status_code = 403
        return response
