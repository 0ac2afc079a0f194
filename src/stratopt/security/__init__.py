"""Authentication, authorization and rate limiting, free of gRPC and database imports.

The interceptors in `api/` and the repositories in `store/` plug into the Protocols defined
here (`RefreshTokenRepo`, `ApiKeyRepo`, `RateLimitBackend`); in-memory implementations of
each serve tests and the single-process embedded mode.
"""

from stratopt.security.api_keys import (
    ApiKeyConflictError,
    ApiKeyRecord,
    ApiKeyRepo,
    ApiKeyService,
    CreatedApiKey,
    InMemoryApiKeyRepo,
)
from stratopt.security.errors import (
    AuthenticationError,
    ConcurrencyLimitExceededError,
    PermissionDeniedError,
    RateLimitExceededError,
)
from stratopt.security.passwords import (
    PasswordHasher,
    ScryptParams,
    check_password_policy,
    hash_password,
    needs_rehash,
    verify_password,
)
from stratopt.security.principal import Principal
from stratopt.security.ratelimit import (
    Category,
    ConcurrencyLimiter,
    Decision,
    Rate,
    RateLimitBackend,
    RateLimits,
    TokenBucketLimiter,
)
from stratopt.security.redact import RedactingFilter, redact
from stratopt.security.refresh_tokens import (
    InMemoryRefreshTokenRepo,
    IssuedRefreshToken,
    RefreshTokenPolicy,
    RefreshTokenRecord,
    RefreshTokenRepo,
    RefreshTokenReuseError,
)
from stratopt.security.roles import ROLE_PERMISSIONS, Permission, Role, has_permission
from stratopt.security.tokens import Claims, IssuedToken, TokenConfig, TokenService

__all__ = [
    "ROLE_PERMISSIONS",
    "ApiKeyConflictError",
    "ApiKeyRecord",
    "ApiKeyRepo",
    "ApiKeyService",
    "AuthenticationError",
    "Category",
    "Claims",
    "ConcurrencyLimitExceededError",
    "ConcurrencyLimiter",
    "CreatedApiKey",
    "Decision",
    "InMemoryApiKeyRepo",
    "InMemoryRefreshTokenRepo",
    "IssuedRefreshToken",
    "IssuedToken",
    "PasswordHasher",
    "Permission",
    "PermissionDeniedError",
    "Principal",
    "Rate",
    "RateLimitBackend",
    "RateLimitExceededError",
    "RateLimits",
    "RedactingFilter",
    "RefreshTokenPolicy",
    "RefreshTokenRecord",
    "RefreshTokenRepo",
    "RefreshTokenReuseError",
    "Role",
    "ScryptParams",
    "TokenBucketLimiter",
    "TokenConfig",
    "TokenService",
    "check_password_policy",
    "has_permission",
    "hash_password",
    "needs_rehash",
    "redact",
    "verify_password",
]
