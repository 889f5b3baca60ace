package main

import (
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/stillpoint-dev/stillpoint/internal/tlsx"
)

func init() { subcommands = append(subcommands, newTLSCmd) }

func newTLSCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tls",
		Short: "Create the cluster CA and role certificates for mTLS",
		Long: `Create the certificate authority of a Stillpoint deployment and the
certificates of its servers, agents and operators (ECDSA P-256, Go's
crypto/x509; no openssl needed).

Every certificate carries its role in a URI SAN, spiffe://stillpoint/<role>/<name>,
and the peers check it: an agent serves Pause, Unpause, RenewLease, RunHook
and Status only to a server certificate; the coordinator API takes client
and server certificates; server-to-server calls take server certificates.

Servers and agents reload their certificates, keys and CA on SIGHUP and
when the files change.`,
		Example: `  stillpoint tls ca create --dir /etc/stillpoint/tls
  stillpoint tls cert create --server --name s1 --ip 10.0.0.1 --dir /etc/stillpoint/tls
  stillpoint tls cert create --agent --name ledger-1 --dns ledger-1.internal
  stillpoint tls cert create --client --name alice`,
	}
	ca := &cobra.Command{Use: "ca", Short: "Manage the cluster certificate authority",
		Example: "  stillpoint tls ca create --dir /etc/stillpoint/tls"}
	ca.AddCommand(newTLSCACreateCmd())
	cert := &cobra.Command{Use: "cert", Short: "Issue role certificates signed by the cluster CA",
		Example: "  stillpoint tls cert create --server --name s1 --ip 10.0.0.1"}
	cert.AddCommand(newTLSCertCreateCmd())
	cmd.AddCommand(ca, cert)
	return cmd
}

func newTLSCACreateCmd() *cobra.Command {
	var dir, name string
	var days int
	var force bool
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create a CA: ca.pem and ca-key.pem",
		Long: `Create a self-signed certificate authority (ECDSA P-256, may sign leaf
certificates only) and write DIR/ca.pem (0644) and DIR/ca-key.pem (0600).
Existing files are never overwritten without --force. Keep ca-key.pem off
the servers: only the host that issues certificates needs it.`,
		Example: `  stillpoint tls ca create
  stillpoint tls ca create --dir /etc/stillpoint/tls --name "Prod Stillpoint CA" --days 3650`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if days <= 0 {
				return usagef("--days %d: want a positive number of days", days)
			}
			kp, err := tlsx.NewCA(tlsx.CAOptions{Name: name, Validity: time.Duration(days) * 24 * time.Hour})
			if err != nil {
				return err
			}
			certFile, keyFile := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem")
			if err := tlsx.WriteKeyPair(kp, certFile, keyFile, force); err != nil {
				return err
			}
			return describeIssued(cmd.OutOrStdout(), kp, certFile, keyFile)
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", ".", "directory to write ca.pem and ca-key.pem into")
	f.StringVar(&name, "name", "Stillpoint CA", "common name of the CA")
	f.IntVar(&days, "days", int(tlsx.DefaultCAValidity/(24*time.Hour)), "validity in days")
	f.BoolVar(&force, "force", false, "overwrite existing files")
	return cmd
}

func newTLSCertCreateCmd() *cobra.Command {
	var server, agentRole, client, force, noLocalhost bool
	var name, dir, caCert, caKey, out string
	var dns, ips []string
	var days int
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Issue a server, agent or client certificate",
		Long: `Issue a certificate for one role, signed by the cluster CA, and write
DIR/<role>-<name>.pem (0644) and DIR/<role>-<name>-key.pem (0600), or
OUT.pem and OUT-key.pem with --out. Existing files are never overwritten
without --force.

  --server  a coordinator server: server and client authentication (it
            serves the API and dials the other servers and the agents).
  --agent   an agent: server and client authentication (it serves the
            AgentService; it may also present it to its node's admin port).
  --client  an operator or automation: client authentication only, no
            host names; it cannot serve.

Server and agent certificates name --dns and --ip, the --name itself when
it is a host name, and localhost, 127.0.0.1 and ::1 (unless --no-localhost),
so a local CLI or dev cluster verifies them. The role travels in the URI SAN
spiffe://stillpoint/<role>/<name>.`,
		Example: `  stillpoint tls cert create --server --name s1 --ip 10.0.0.1 --dns s1.stillpoint.internal
  stillpoint tls cert create --agent --name ledger-1 --ip 10.0.1.5
  stillpoint tls cert create --client --name alice --days 30
  stillpoint tls cert create --server --name s2 --ca-cert /secure/ca.pem --ca-key /secure/ca-key.pem --dir /etc/stillpoint/tls --out server`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var roles []string
			for r, on := range map[string]bool{tlsx.RoleServer: server, tlsx.RoleAgent: agentRole, tlsx.RoleClient: client} {
				if on {
					roles = append(roles, r)
				}
			}
			if len(roles) != 1 {
				return usagef("give exactly one of --server, --agent or --client")
			}
			if name == "" {
				return usagef("--name is required (the server id, agent node name or operator)")
			}
			if days <= 0 {
				return usagef("--days %d: want a positive number of days", days)
			}
			o := tlsx.LeafOptions{Role: roles[0], Name: name, DNS: dns, NoLocalhost: noLocalhost, Validity: time.Duration(days) * 24 * time.Hour}
			for _, s := range ips {
				ip := net.ParseIP(s)
				if ip == nil {
					return usagef("--ip %q is not an IP address", s)
				}
				o.IPs = append(o.IPs, ip)
			}
			if err := o.Validate(); err != nil {
				return usagef("%v", err)
			}
			if caCert == "" {
				caCert = filepath.Join(dir, "ca.pem")
			}
			if caKey == "" {
				caKey = filepath.Join(dir, "ca-key.pem")
			}
			ca, err := tlsx.LoadKeyPairFiles(caCert, caKey)
			if err != nil {
				return fmt.Errorf("load the CA (--ca-cert %s, --ca-key %s; create one with `stillpoint tls ca create`): %w", caCert, caKey, err)
			}
			kp, err := ca.Issue(o)
			if err != nil {
				return err
			}
			base := filepath.Join(dir, o.Role+"-"+o.Name)
			if out != "" {
				base = out
				if !filepath.IsAbs(out) && !strings.ContainsRune(out, filepath.Separator) {
					base = filepath.Join(dir, out)
				}
			}
			certFile, keyFile := base+".pem", base+"-key.pem"
			if err := tlsx.WriteKeyPair(kp, certFile, keyFile, force); err != nil {
				return err
			}
			return describeIssued(cmd.OutOrStdout(), kp, certFile, keyFile)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&server, "server", false, "issue a coordinator server certificate")
	f.BoolVar(&agentRole, "agent", false, "issue an agent certificate")
	f.BoolVar(&client, "client", false, "issue a client (operator) certificate")
	f.StringVar(&name, "name", "", "server id, agent node name or operator name")
	f.StringSliceVar(&dns, "dns", nil, "extra DNS names (server and agent)")
	f.StringSliceVar(&ips, "ip", nil, "extra IP addresses (server and agent)")
	f.BoolVar(&noLocalhost, "no-localhost", false, "leave out the localhost, 127.0.0.1 and ::1 names")
	f.IntVar(&days, "days", int(tlsx.DefaultLeafValidity/(24*time.Hour)), "validity in days")
	f.StringVar(&dir, "dir", ".", "directory holding ca.pem/ca-key.pem and receiving the files")
	f.StringVar(&caCert, "ca-cert", "", "CA certificate (default DIR/ca.pem)")
	f.StringVar(&caKey, "ca-key", "", "CA private key (default DIR/ca-key.pem)")
	f.StringVar(&out, "out", "", "base name of the files written: BASE.pem and BASE-key.pem (default DIR/ROLE-NAME)")
	f.BoolVar(&force, "force", false, "overwrite existing files")
	return cmd
}

func describeIssued(w io.Writer, kp *tlsx.KeyPair, certFile, keyFile string) error {
	c := kp.Cert
	var b strings.Builder
	fmt.Fprintf(&b, "certificate  %s\nprivate key  %s (0600)\nsubject      %s\nserial       %s\nvalid        %s to %s\n",
		certFile, keyFile, c.Subject, c.SerialNumber.Text(16), c.NotBefore.UTC().Format(time.RFC3339), c.NotAfter.UTC().Format(time.RFC3339))
	if id, ok := tlsx.IdentityOfCert(c); ok {
		fmt.Fprintf(&b, "role         %s (%s)\n", id.Role, tlsx.RoleURI(id.Role, id.Name))
	}
	var sans []string
	sans = append(sans, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		sans = append(sans, ip.String())
	}
	if len(sans) > 0 {
		fmt.Fprintf(&b, "names        %s\n", strings.Join(sans, ", "))
	}
	_, err := io.WriteString(w, b.String())
	return err
}
