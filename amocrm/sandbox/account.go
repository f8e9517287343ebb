package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
)

// AccountOptions describes a new account. Subdomain defaults to
// "sandbox{id}"; Users (default 1) counts the admin plus further active users.
type AccountOptions struct {
	Subdomain string `json:"subdomain"`
	Name      string `json:"name"`
	Users     int    `json:"users"`
}

// AccountInfo identifies a created account and carries a fresh
// authorization code for the configured integration (20 min, single use).
type AccountInfo struct {
	AccountID   int64  `json:"account_id"`
	Subdomain   string `json:"subdomain"`
	AdminUserID int64  `json:"admin_user_id"`
	Code        string `json:"code"`
}

// UserOptions describes a user added to an account.
type UserOptions struct {
	Name     string `json:"name"`
	Email    string `json:"email"`
	IsAdmin  bool   `json:"is_admin"`
	IsActive bool   `json:"is_active"`
	IsFree   bool   `json:"is_free"`
}

// UserInfo is a created user.
type UserInfo struct {
	ID   int64  `json:"id"`
	Name string `json:"name"`
}

var subdomainPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// CreateAccount creates an account with an admin user, opts.Users-1 further
// active users, the default main pipeline and the predefined contact
// fields. It returns ErrInvalid for a malformed or taken subdomain, a name
// over MaxNameLength or Users outside 0…MaxUsersPerAccount.
func (s *Sandbox) CreateAccount(opts AccountOptions) (AccountInfo, error) {
	if opts.Users < 0 || opts.Users > MaxUsersPerAccount {
		return AccountInfo{}, fmt.Errorf("sandbox: create account: users must be between 0 and %d, got %d: %w", MaxUsersPerAccount, opts.Users, ErrInvalid)
	}
	if err := checkName("account name", opts.Name); err != nil {
		return AccountInfo{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	opts.Subdomain = strings.ToLower(opts.Subdomain)
	if opts.Subdomain != "" && (!subdomainPattern.MatchString(opts.Subdomain) || s.accountBySubdomain(opts.Subdomain) != nil) {
		return AccountInfo{}, fmt.Errorf("sandbox: create account %q: subdomain malformed or taken: %w", opts.Subdomain, ErrInvalid)
	}
	s.st.AccountSeq++
	acc := &account{
		ID:        s.st.AccountSeq,
		Subdomain: opts.Subdomain,
		Name:      opts.Name,
		CreatedAt: s.clock.Now(),
		Fields:    map[string][]*field{},
		Contacts:  map[int64]*contact{},
		Leads:     map[int64]*lead{},
		Notes:     map[int64]*note{},
		Tags:      map[string][]*tag{},
		Companies: map[int64]*company{},
	}
	if acc.Subdomain == "" {
		acc.Subdomain = "sandbox" + strconv.FormatInt(acc.ID, 10)
	}
	if acc.Name == "" {
		acc.Name = acc.Subdomain
	}
	users := max(opts.Users, 1)
	for i := range users {
		u := &user{ID: s.st.nextID(), IsActive: true, IsAdmin: i == 0}
		u.Name = fmt.Sprintf("User %d", i+1)
		if i == 0 {
			u.Name = "Admin"
		}
		u.Email = fmt.Sprintf("user%d@%s.example", u.ID, acc.Subdomain)
		acc.Users = append(acc.Users, u)
	}
	acc.Pipelines = []*pipeline{s.defaultPipeline()}
	acc.Fields["contacts"] = s.predefinedContactFields()
	acc.Fields["leads"] = nil
	s.st.Accounts[acc.ID] = acc
	return AccountInfo{AccountID: acc.ID, Subdomain: acc.Subdomain, AdminUserID: acc.Users[0].ID, Code: s.newCode(acc)}, nil
}

// IssueCode returns a fresh authorization code for the account admin, as
// the consent window would. It returns ErrAccountNotFound.
func (s *Sandbox) IssueCode(accountID int64) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	acc := s.st.Accounts[accountID]
	if acc == nil {
		return "", ErrAccountNotFound
	}
	return s.newCode(acc), nil
}

// AddUser adds a user to the account. It returns ErrAccountNotFound, or
// ErrInvalid when the account has MaxUsersPerAccount users already or a name
// or e-mail is over MaxNameLength.
func (s *Sandbox) AddUser(accountID int64, opts UserOptions) (UserInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	acc := s.st.Accounts[accountID]
	if acc == nil {
		return UserInfo{}, ErrAccountNotFound
	}
	if len(acc.Users) >= MaxUsersPerAccount {
		return UserInfo{}, fmt.Errorf("sandbox: add user to account %d: it has %d users already: %w", accountID, MaxUsersPerAccount, ErrInvalid)
	}
	if err := errors.Join(checkName("user name", opts.Name), checkName("user e-mail", opts.Email)); err != nil {
		return UserInfo{}, err
	}
	u := &user{ID: s.st.nextID(), Name: opts.Name, Email: opts.Email, IsAdmin: opts.IsAdmin, IsActive: opts.IsActive, IsFree: opts.IsFree}
	if u.Name == "" {
		u.Name = fmt.Sprintf("User %d", u.ID)
	}
	if u.Email == "" {
		u.Email = fmt.Sprintf("user%d@%s.example", u.ID, acc.Subdomain)
	}
	acc.Users = append(acc.Users, u)
	return UserInfo{ID: u.ID, Name: u.Name}, nil
}

// SetPaid marks the account paid or unpaid; an unpaid account answers 402
// to every API call. It returns ErrAccountNotFound.
func (s *Sandbox) SetPaid(accountID int64, paid bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	acc := s.st.Accounts[accountID]
	if acc == nil {
		return ErrAccountNotFound
	}
	acc.Unpaid = !paid
	return nil
}

func (c *call) getAccount() {
	a := c.acc
	body := map[string]any{
		"id":                         a.ID,
		"name":                       a.Name,
		"subdomain":                  a.Subdomain,
		"created_at":                 a.CreatedAt.Unix(),
		"created_by":                 0,
		"updated_at":                 a.CreatedAt.Unix(),
		"updated_by":                 0,
		"current_user_id":            c.user.ID,
		"country":                    "RU",
		"currency":                   "RUB",
		"currency_symbol":            "₽",
		"customers_mode":             "disabled",
		"is_unsorted_on":             true,
		"mobile_feature_version":     0,
		"is_loss_reason_enabled":     true,
		"is_helpbot_enabled":         false,
		"is_technical_account":       false,
		"contact_name_display_order": 1,
		"_links":                     c.selfLinks(),
	}
	with := withSet(c.r)
	embedded := map[string]any{}
	if with["amojo_id"] {
		body["amojo_id"] = fmt.Sprintf("%08x-0000-4000-8000-%012x", a.ID, a.ID)
	}
	if with["uuid"] {
		body["uuid"] = fmt.Sprintf("%08x-0000-4000-9000-%012x", a.ID, a.ID)
	}
	if with["version"] {
		body["version"] = 11
	}
	if with["is_api_filter_enabled"] {
		body["is_api_filter_enabled"] = true
	}
	if with["drive_url"] {
		body["drive_url"] = "https://drive-b.amocrm.ru"
	}
	if with["datetime_settings"] {
		body["datetime_settings"] = map[string]any{
			"date_pattern": "d.m.Y H:i", "short_date_pattern": "d.m.Y", "short_time_pattern": "H:i",
			"date_format": "d.m.Y", "time_format": "H:i:s", "timezone": "Europe/Moscow", "timezone_offset": "+03:00",
		}
	}
	if with["users_groups"] {
		embedded["users_groups"] = []map[string]any{{"id": 0, "name": "Отдел продаж", "uuid": nil}}
	}
	if with["task_types"] {
		embedded["task_types"] = []map[string]any{
			{"id": 1, "name": "Связаться", "color": nil, "icon_id": nil, "code": "FOLLOW_UP"},
			{"id": 2, "name": "Встреча", "color": nil, "icon_id": nil, "code": "MEETING"},
		}
	}
	if len(embedded) > 0 {
		body["_embedded"] = embedded
	}
	c.ok(body)
}

func rightsOf(u *user) map[string]any {
	level := "A"
	if u.IsFree {
		level = "D"
	}
	entity := map[string]any{"view": level, "edit": level, "add": level, "delete": level, "export": level}
	return map[string]any{
		"leads": entity, "contacts": entity, "companies": entity,
		"tasks":          map[string]any{"edit": level, "delete": level},
		"mail_access":    !u.IsFree,
		"catalog_access": !u.IsFree,
		"files_access":   !u.IsFree,
		"status_rights":  nil,
		"is_admin":       u.IsAdmin,
		"is_free":        u.IsFree,
		"is_active":      u.IsActive,
		"group_id":       nil,
		"role_id":        nil,
	}
}

func (c *call) renderUser(u *user) map[string]any {
	return map[string]any{
		"id": u.ID, "name": u.Name, "email": u.Email, "lang": "ru",
		"rights": rightsOf(u),
		"_links": map[string]any{"self": c.href("/api/v4/users/" + strconv.FormatInt(u.ID, 10))},
	}
}

func (c *call) listUsers() {
	if !c.requireAdmin() {
		return
	}
	page, limit, ok := c.paging()
	if !ok {
		return
	}
	users := c.acc.Users
	from, to, more := window(len(users), page, limit)
	if from == to {
		c.noContent()
		return
	}
	out := make([]map[string]any, 0, to-from)
	for _, u := range users[from:to] {
		out = append(out, c.renderUser(u))
	}
	c.ok(map[string]any{
		"_total_items": len(users),
		"_page":        page,
		"_page_count":  (len(users) + limit - 1) / limit,
		"_links":       c.pageLinks(page, limit, more),
		"_embedded":    map[string]any{"users": out},
	})
}

func (c *call) getUser() {
	if !c.requireAdmin() {
		return
	}
	u := c.acc.user(c.id("id"))
	if u == nil {
		c.noContent()
		return
	}
	c.ok(c.renderUser(u))
}

// createUsers serves POST /api/v4/users: ≤10 per call, unavailable above
// 100 users, 201.
func (c *call) createUsers() {
	if !c.requireAdmin() {
		return
	}
	items, ok := c.readBatch(10, false)
	if !ok {
		return
	}
	if len(c.acc.Users)+len(items) > 100 {
		c.fail(http.StatusBadRequest, "Users limit exceeded")
		return
	}
	type input struct {
		Name   string `json:"name"`
		Email  string `json:"email"`
		Rights *struct {
			IsAdmin  bool  `json:"is_admin"`
			IsFree   bool  `json:"is_free"`
			IsActive *bool `json:"is_active"`
		} `json:"rights"`
	}
	var errs []itemErrors
	inputs := make([]input, len(items))
	for i, raw := range items {
		if fe := decodeItem(raw, &inputs[i]); fe != nil {
			errs = append(errs, itemErrors{RequestID: requestID(raw, i), Errors: []fieldError{*fe}})
		} else if inputs[i].Name == "" || inputs[i].Email == "" {
			errs = append(errs, itemErrors{RequestID: requestID(raw, i), Errors: []fieldError{{Code: "NotBlank", Path: "name", Detail: "This value should not be blank."}}})
		}
	}
	if errs != nil {
		c.validation(errs)
		return
	}
	var out []map[string]any
	for i, in := range inputs {
		u := &user{ID: c.s.st.nextID(), Name: in.Name, Email: in.Email, IsActive: true}
		if in.Rights != nil {
			u.IsAdmin, u.IsFree = in.Rights.IsAdmin, in.Rights.IsFree
			if in.Rights.IsActive != nil {
				u.IsActive = *in.Rights.IsActive
			}
		}
		c.acc.Users = append(c.acc.Users, u)
		m := c.renderUser(u)
		m["request_id"] = requestID(items[i], i)
		out = append(out, m)
	}
	c.created(map[string]any{"_total_items": len(out), "_embedded": map[string]any{"users": out}})
}

// jsonNumberToInt converts decoded JSON numbers and numeric strings.
func jsonNumberToInt(v any) (int64, bool) {
	switch n := v.(type) {
	case json.Number:
		i, err := n.Int64()
		return i, err == nil
	case float64:
		return int64(n), n == float64(int64(n))
	case string:
		i, err := strconv.ParseInt(n, 10, 64)
		return i, err == nil
	}
	return 0, false
}

// FindAccount returns the account with the subdomain, if there is one.
func (s *Sandbox) FindAccount(subdomain string) (AccountInfo, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	acc := s.accountBySubdomain(strings.ToLower(subdomain))
	if acc == nil {
		return AccountInfo{}, false
	}
	info := AccountInfo{AccountID: acc.ID, Subdomain: acc.Subdomain}
	if admin := acc.admin(); admin != nil {
		info.AdminUserID = admin.ID
	}
	return info, true
}
