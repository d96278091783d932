"""Network over REST: what a container has, and the requests that change it."""
from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers

from hosts.models import Host
from network.models import IPAddress, IPPool, NetInterface
from panel.fields import AsciiIntegerSerializerField
from tenancy.models import Tenant


class AddressSerializer(serializers.ModelSerializer):
    pool = serializers.SlugRelatedField(slug_field="name", read_only=True, allow_null=True)

    class Meta:
        model = IPAddress
        fields = ["address", "prefixlen", "cidr", "interface", "pool", "created_at"]
        read_only_fields = fields


class NetInterfaceSerializer(serializers.ModelSerializer):
    addresses = serializers.SerializerMethodField()
    link = serializers.SerializerMethodField()

    class Meta:
        model = NetInterface
        fields = ["ifname", "mac", "host_ifname", "host_mac", "bridge", "gateway", "addresses", "link"]
        read_only_fields = fields

    def get_addresses(self, netif) -> list[str]:
        return [a.cidr for a in getattr(netif, "address_list", [])]

    def get_link(self, netif) -> dict | None:
        return getattr(netif, "link", None)


@extend_schema_serializer(many=False)  # the answer of a "list" route, but one object
class ContainerNetworkSerializer(serializers.Serializer):
    ctid = AsciiIntegerSerializerField()
    addresses = AddressSerializer(many=True, help_text="routed (venet0) addresses")
    venet_link = serializers.DictField(allow_null=True, help_text="venet<CTID> on the host: state, bytes_in, bytes_out")
    netifs = NetInterfaceSerializer(many=True)
    nameservers = serializers.ListField(child=serializers.CharField())
    searchdomain = serializers.CharField()
    updated_at = serializers.DateTimeField(allow_null=True, help_text="when the host agent reported link state")


class IPAddSerializer(serializers.Serializer):
    addresses = serializers.ListField(child=serializers.CharField(max_length=64), allow_empty=False,
                                      help_text='addresses, or "auto" to take one from a pool')
    pool = serializers.CharField(required=False, allow_blank=True, allow_null=True)


class IPDelSerializer(serializers.Serializer):
    addresses = serializers.JSONField(help_text='a list of addresses, or "all"')

    def validate_addresses(self, value):
        if value == "all":
            return "all"
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise serializers.ValidationError('Give a list of addresses or "all".')
        return value


class NetifAddSerializer(serializers.Serializer):
    spec = serializers.CharField(max_length=200, help_text="IFNAME[,MAC,HOST_IFNAME,HOST_MAC,BRIDGE]")
    address = serializers.CharField(required=False, allow_blank=True, allow_null=True,
                                    help_text='CIDR such as 203.0.113.5/24, or "auto"')
    gateway = serializers.CharField(required=False, allow_blank=True, allow_null=True)


class NetifDelSerializer(serializers.Serializer):
    ifname = serializers.CharField(max_length=15, help_text='an interface name, or "all"')


class DNSSerializer(serializers.Serializer):
    nameservers = serializers.ListField(child=serializers.CharField(max_length=64), required=False)
    # Not trimmed: a "\r" or "\n" is refused by the service as by vzctl, not quietly dropped here.
    searchdomain = serializers.CharField(required=False, allow_blank=True, max_length=253, trim_whitespace=False)


class PoolSerializer(serializers.ModelSerializer):
    hosts = serializers.SlugRelatedField(slug_field="name", many=True, queryset=Host.objects.all(), required=False,
                                         help_text="hosts that may use it; none: all")
    tenants = serializers.SlugRelatedField(slug_field="slug", many=True, queryset=Tenant.objects.all(), required=False,
                                           help_text="tenants whose members may take addresses from it")
    used = serializers.SerializerMethodField(help_text="addresses handed out of it")
    total = serializers.SerializerMethodField(help_text="how many it holds; null for a whole IPv6 network")
    total_text = serializers.SerializerMethodField(help_text='the total as shown, e.g. "11" or "/64"')

    class Meta:
        model = IPPool
        fields = ["id", "name", "network", "gateway", "ranges", "hosts", "tenants", "shared", "description", "used",
                  "total", "total_text"]
        read_only_fields = ["id", "used", "total", "total_text"]
        # The model's clean() (through network.services.save_pool) checks these; no unique validator
        # here so the service's message is the one callers get.
        extra_kwargs = {"name": {"validators": []}}

    def to_representation(self, pool):
        data = super().to_representation(pool)
        visible = self.context.get("visible_tenant_slugs")
        if visible is not None:  # a tenant admin learns of their own tenants only
            data["tenants"] = [slug for slug in data["tenants"] if slug in visible]
        return data

    def get_used(self, pool) -> int:
        used = getattr(pool, "used", None)
        return used if used is not None else pool.addresses.count()

    def get_total(self, pool) -> int | None:
        from network.views import pool_capacity
        return pool_capacity(pool)[0]

    def get_total_text(self, pool) -> str:
        from network.views import pool_capacity
        return pool_capacity(pool)[1]


class HostBridgeSerializer(serializers.Serializer):
    name = serializers.CharField()
    state = serializers.CharField(help_text='"up", "down" or "unknown"')
    mac = serializers.CharField(allow_blank=True)
    addresses = serializers.ListField(child=serializers.CharField())
    ports = serializers.ListField(child=serializers.CharField(), help_text="the ports the caller may see")
    hidden_ports = serializers.IntegerField(help_text="ports of containers the caller may not see")
    default = serializers.BooleanField(help_text="the host's default bridge")


@extend_schema_serializer(many=False)  # the answer of a "list" route, but one object
class HostBridgesSerializer(serializers.Serializer):
    """GET /api/hosts/<name>/bridges/: what the host's agent last reported."""

    host = serializers.CharField()
    default_bridge = serializers.CharField()
    updated_at = serializers.CharField(allow_null=True, help_text="when the agent reported (ISO 8601)")
    bridges = HostBridgeSerializer(many=True)


class BridgeSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=15)
    address = serializers.CharField(required=False, allow_blank=True, allow_null=True,
                                    help_text="optional, CIDR such as 10.0.0.1/24")


class BridgeGrantSerializer(serializers.Serializer):
    bridges = serializers.ListField(child=serializers.CharField(max_length=15), allow_empty=True,
                                    help_text="bridge names its members may use besides each host's default bridge")


@extend_schema_serializer(many=False)  # the answer of a "list" route, but one object
class TenantBridgesSerializer(serializers.Serializer):
    tenant = serializers.CharField(help_text="the tenant's slug")
    bridges = serializers.ListField(child=serializers.CharField(),
                                    help_text="bridge names its members may use besides each host's default bridge")
