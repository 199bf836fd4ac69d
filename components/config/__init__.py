"""Typed stack configuration, parsed once (``load()`` in __main__.py) and handed to components by section.

One module per section, on top of ``reader`` (ConfigError and the typed Reader); this package re-exports the
names the program, the tests and the tools use, so ``from components.config import X`` stays the one import.
"""

from components.config.agents import ImagesConfig
from components.config.cluster import (
    NESTED_VIRT_FAMILIES,
    ClusterConfig,
    KarpenterConfig,
    KataConfig,
    NetworkConfig,
    NodeGroupConfig,
)
from components.config.gateway import GatewayConfig, ModelConfig, RdsConfig
from components.config.models import ModelsConfig, SelfHostedModel
from components.config.observability import ObservabilityConfig
from components.config.platform import SECRET_KEYS, PlatformConfig, check_stack_file, from_engine, load
from components.config.reader import (
    NAMESPACE,
    PROJECT_FILE,
    UNDECLARED_KEYS,
    ConfigError,
    Reader,
    decode_raw,
    load_yaml,
    project_schema,
    top_level_texts,
)
from components.config.tenants import (
    EXTRA_RESERVED_AGENT_ENV,
    PLATFORM_AGENT_ENV,
    RESERVED_AGENT_ENV,
    AgentConfig,
    AgentSchedule,
    EgressConfig,
    EgressRules,
    McpServerConfig,
    TenantConfig,
    TenantLitellmConfig,
    TenantQuota,
)
from components.k8s.quantity import quantity_value

__all__ = [
    "EXTRA_RESERVED_AGENT_ENV",
    "NAMESPACE",
    "NESTED_VIRT_FAMILIES",
    "PLATFORM_AGENT_ENV",
    "PROJECT_FILE",
    "RESERVED_AGENT_ENV",
    "SECRET_KEYS",
    "UNDECLARED_KEYS",
    "AgentConfig",
    "McpServerConfig",
    "ClusterConfig",
    "ConfigError",
    "EgressConfig",
    "EgressRules",
    "GatewayConfig",
    "ImagesConfig",
    "KarpenterConfig",
    "KataConfig",
    "ModelConfig",
    "ModelsConfig",
    "NetworkConfig",
    "NodeGroupConfig",
    "ObservabilityConfig",
    "PlatformConfig",
    "RdsConfig",
    "SelfHostedModel",
    "Reader",
    "TenantConfig",
    "TenantLitellmConfig",
    "TenantQuota",
    "check_stack_file",
    "decode_raw",
    "from_engine",
    "load",
    "load_yaml",
    "project_schema",
    "quantity_value",
    "top_level_texts",
    "AgentSchedule",
]
