"""Kata pods cannot reach ClusterIP services, CoreDNS included: they resolve via the VPC."""

from __future__ import annotations

from collections.abc import Sequence

from pulumi_policy import ReportViolation, ResourceValidationArgs, ResourceValidationPolicy

from .common import (
    DEFAULT_SERVICE_CIDRS,
    Network,
    Unknowns,
    applies_to,
    config_str,
    config_strings,
    embedded_ipv4,
    get,
    items,
    parse_ip,
    schema,
    service_networks,
    string_list_property,
)
from .workloads import PodTemplate, is_workload, workload_template

CIDR_PATTERN = r"^[0-9A-Fa-f:.]+/[0-9]{1,3}$"
VPC_RESOLVER_HINT = "the VPC resolver (the VPC CIDR base address + 2, e.g. 10.1.0.2 for 10.1.0.0/16)"


def _check_dns_policy(template: PodTemplate, report_violation: ReportViolation) -> None:
    dns_policy = get(template.spec, "dnsPolicy")
    if dns_policy == "None" or (dns_policy is None and template.patch):
        return
    found = f' instead of "{dns_policy}"' if isinstance(dns_policy, str) else ""
    report_violation(
        f'{template.who}: set {template.field("dnsPolicy")} to "None"{found} and list '
        f"{VPC_RESOLVER_HINT} in {template.field('dnsConfig', 'nameservers')}; Kata pods "
        "cannot reach CoreDNS at its ClusterIP."
    )


def _check_nameservers(
    template: PodTemplate,
    networks: Sequence[tuple[Network, str, Network]],
    report_violation: ReportViolation,
    unknowns: Unknowns,
) -> None:
    """Every nameserver an IP address as Kubernetes writes one, outside the service CIDRs in every spelling.

    Any other address is allowed, at both gates: the sandbox NetworkPolicy lets DNS reach only the VPC resolver, and
    a Kata pod outside sandboxes that names another resolver only breaks its own DNS (docs/admission.md).
    """
    field = template.field("dnsConfig", "nameservers")
    nameservers = get(get(template.spec, "dnsConfig"), "nameservers")
    if nameservers is None and template.patch:
        return  # a patch that leaves the nameservers as they are
    seen = 0
    unknown_entries = Unknowns()
    for nameserver in items(nameservers, unknown_entries):
        seen += 1
        address = parse_ip(nameserver) if isinstance(nameserver, str) else None
        if address is None:
            report_violation(
                f"{template.who}: replace nameserver {nameserver!r} in {field} with the IP "
                f"address of {VPC_RESOLVER_HINT}; nameservers must be IP addresses (no spaces, zones or leading "
                "zeros)."
            )
            continue
        mapped = getattr(address, "ipv4_mapped", None)
        if mapped is not None:
            # Kubernetes CEL's ip() refuses IPv4-mapped IPv6, so the admission policy denies every such
            # nameserver; the pack does the same (one rule at both gates), and names the plain address to use.
            report_violation(
                f"{template.who}: replace nameserver {nameserver} in {field} with the plain IPv4 "
                f"address {mapped} ({VPC_RESOLVER_HINT}); IPv4-mapped IPv6 nameservers are refused."
            )
            continue
        for network, spelling, service_cidr in networks:
            if address not in network:
                continue
            reached = (
                f"{address}" if not spelling else f"{address} ({spelling}, IPv4 {embedded_ipv4(address, spelling)})"
            )  # type: ignore[arg-type]
            report_violation(
                f"{template.who}: replace nameserver {nameserver} in {field} with "
                f"{VPC_RESOLVER_HINT}; {reached} is inside the service CIDR {service_cidr}, "
                "which Kata pods cannot reach."
            )
            break
    if unknown_entries.first is not None:
        unknowns.record(unknown_entries.first)
    elif seen == 0:
        report_violation(
            f"{template.who}: add {VPC_RESOLVER_HINT} to {field}; a Kata pod with "
            'dnsPolicy "None" needs at least one nameserver.'
        )


def _runs_in_kata(template: PodTemplate, prefix: str) -> bool:
    """Kata by its runtimeClassName; a patch that leaves it as it is runs in Kata when it patches a sandbox."""
    runtime_class = template.runtime_class()
    if runtime_class is None:
        return template.patch and template.has_sandbox_label()
    return runtime_class.startswith(prefix)


def kata_dns_validator(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    template = workload_template(args)
    if template is None:
        return
    config = args.get_config()
    if not _runs_in_kata(template, config_str(config, "kataRuntimePrefix", "kata")):
        return
    networks = service_networks(config_strings(config, "serviceCidrs", DEFAULT_SERVICE_CIDRS))
    unknowns = Unknowns()
    unknowns.run(_check_dns_policy, template, report_violation)
    unknowns.run(_check_nameservers, template, networks, report_violation, unknowns)
    unknowns.finish()


kata_dns = ResourceValidationPolicy(
    name="kata-dns",
    description=(
        "Kata pods cannot reach ClusterIP services (CoreDNS included): they need dnsPolicy "
        "None and the VPC resolver as nameserver, never an address in a service CIDR."
    ),
    validate=kata_dns_validator,
    config_schema=schema(
        {
            "kataRuntimePrefix": {
                "type": "string",
                "minLength": 1,
                "description": "Pods whose runtimeClassName starts with this prefix run in Kata.",
                "default": "kata",
            },
            "serviceCidrs": string_list_property(
                "The cluster's service CIDRs (ClusterIP ranges) that Kata pods cannot reach: the admission policy's.",
                DEFAULT_SERVICE_CIDRS,
                pattern=CIDR_PATTERN,
            ),
        }
    ),
)
applies_to(kata_dns, is_workload)
