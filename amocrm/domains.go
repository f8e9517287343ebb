package amocrm

import (
	"fmt"
	"regexp"
	"strings"
)

// Domains are amoCRM's and Kommo's account domains: an account lives at
// https://{subdomain}.{domain}. This is the one list every check uses — the
// install redirect's referer, widget token issuers, CORS origins,
// frame-ancestors and the client's own hosts — because the referer is
// attacker-controlled and the client secret is sent to the host it names.
var Domains = []string{"amocrm.ru", "amocrm.com", "kommo.com"}

var subdomainRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// knownDomain reports whether domain is one of Domains.
func knownDomain(domain string) bool {
	for _, d := range Domains {
		if d == domain {
			return true
		}
	}
	return false
}

// ParseAccountHost splits an account host such as "clinic.amocrm.ru" (any
// case, no scheme, port, path or user) into its subdomain and domain. It
// fails for anything else: an IP address, a host outside Domains, a nested
// subdomain, an empty or over-long label.
func ParseAccountHost(host string) (subdomain, domain string, err error) {
	h := strings.ToLower(host)
	sub, dom, ok := strings.Cut(h, ".")
	if !ok || !subdomainRE.MatchString(sub) || !knownDomain(dom) {
		return "", "", fmt.Errorf("amocrm: %q is not an amoCRM account host", host)
	}
	return sub, dom, nil
}

// IsAccountHost reports whether host is an amoCRM account host (see ParseAccountHost).
func IsAccountHost(host string) bool {
	_, _, err := ParseAccountHost(host)
	return err == nil
}

// OriginPatterns are the CSP source expressions that match every account
// origin, for frame-ancestors.
func OriginPatterns() []string {
	out := make([]string, len(Domains))
	for i, d := range Domains {
		out[i] = "https://*." + d
	}
	return out
}
