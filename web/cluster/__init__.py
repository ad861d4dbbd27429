"""Many instances on one Redis: link concurrency as leases, the session directory, instance load
and hang-ups passed between instances. Without Redis the same interface serves one process."""

from .directory import ClusterView, InstanceLoad, SessionEntry
from .node import ClusterNode, Observers, cluster_of

__all__ = ["ClusterNode", "ClusterView", "InstanceLoad", "Observers", "SessionEntry", "cluster_of"]
