//! Calico's model of a NetworkPolicy (the conversion libcalico-go applies), shared by the
//! iptables and nftables renderers. Not built yet.
