package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
)

// parseKey splits a module option key, mgr/<module>/<option>.
func parseKey(c *cmdline, key string) (module, option string, err error) {
	parts := strings.Split(key, "/")
	if len(parts) != 3 || parts[0] != "mgr" || parts[1] == "" || parts[2] == "" {
		return "", "", c.usageErr("KEY %q: must be mgr/<module>/<option>", key)
	}
	return parts[1], parts[2], nil
}

// runConfigSet is `mgrctl config set mgr/<module>/<option> VALUE`.
func runConfigSet(ctx context.Context, e *env, c *cmdline) error {
	pos, err := c.parse([]string{"KEY", "VALUE"}, nil)
	if err != nil {
		return err
	}
	mod, opt, err := parseKey(c, pos[0])
	if err != nil {
		return err
	}
	resp, err := adminCall(ctx, e.client, false, func(ctx context.Context, a mgrv1.AdminServiceClient) (*mgrv1.SetModuleOptionResponse, error) {
		return a.SetModuleOption(ctx, &mgrv1.SetModuleOptionRequest{Module: mod, Option: opt, Value: pos[1]})
	})
	if err != nil {
		return err
	}
	return e.say(resp, "set mgr/%s/%s to %s; epoch %d\n", mod, opt, quoteEmpty(resp.GetValue()), resp.GetEpoch())
}

// runConfigGet is `mgrctl config get mgr/<module>/<option>`.
func runConfigGet(ctx context.Context, e *env, c *cmdline) error {
	pos, err := c.parse([]string{"KEY"}, nil)
	if err != nil {
		return err
	}
	mod, opt, err := parseKey(c, pos[0])
	if err != nil {
		return err
	}
	resp, err := adminCall(ctx, e.client, true, func(ctx context.Context, a mgrv1.AdminServiceClient) (*mgrv1.GetModuleOptionResponse, error) {
		return a.GetModuleOption(ctx, &mgrv1.GetModuleOptionRequest{Module: mod, Option: opt})
	})
	if err != nil {
		return err
	}
	if e.format == formatJSON {
		return writeJSON(e.stdout, resp, true)
	}
	_, err = fmt.Fprintln(e.stdout, resp.GetOption().GetValue())
	return err
}

// runConfigRm is `mgrctl config rm mgr/<module>/<option>`.
func runConfigRm(ctx context.Context, e *env, c *cmdline) error {
	pos, err := c.parse([]string{"KEY"}, nil)
	if err != nil {
		return err
	}
	mod, opt, err := parseKey(c, pos[0])
	if err != nil {
		return err
	}
	resp, err := adminCall(ctx, e.client, false, func(ctx context.Context, a mgrv1.AdminServiceClient) (*mgrv1.RemoveModuleOptionResponse, error) {
		return a.RemoveModuleOption(ctx, &mgrv1.RemoveModuleOptionRequest{Module: mod, Option: opt})
	})
	if err != nil {
		return err
	}
	return e.say(resp, "removed mgr/%s/%s; epoch %d\n", mod, opt, resp.GetEpoch())
}

// runConfigLs is `mgrctl config ls [MODULE]`.
func runConfigLs(ctx context.Context, e *env, c *cmdline) error {
	pos, err := c.parse(nil, []string{"MODULE"})
	if err != nil {
		return err
	}
	mod := ""
	if len(pos) == 1 {
		mod = strings.TrimPrefix(strings.TrimSuffix(pos[0], "/"), "mgr/")
	}
	resp, err := adminCall(ctx, e.client, true, func(ctx context.Context, a mgrv1.AdminServiceClient) (*mgrv1.ListModuleOptionsResponse, error) {
		return a.ListModuleOptions(ctx, &mgrv1.ListModuleOptionsRequest{Module: mod})
	})
	if err != nil {
		return err
	}
	return e.emit(resp, func(w io.Writer) { writeOptions(w, resp.GetOptions()) })
}

// writeOptions writes the KEY table of `config ls`.
func writeOptions(w io.Writer, opts []*mgrv1.ModuleOptionValue) {
	fmt.Fprintln(w, "KEY\tVALUE\tSET\tTYPE\tDEFAULT\tBOUNDS\tDESCRIPTION")
	for _, ov := range opts {
		o := ov.GetOption()
		typ := "-"
		if o.GetType() != mgrv1.OptionType_OPTION_TYPE_UNSPECIFIED {
			typ = strings.ToLower(strings.TrimPrefix(o.GetType().String(), "OPTION_TYPE_"))
		}
		fmt.Fprintf(w, "mgr/%s/%s\t%s\t%s\t%s\t%s\t%s\t%s\n", ov.GetModule(), o.GetName(), quoteEmpty(ov.GetValue()),
			yesNo(ov.GetSet()), typ, quoteEmpty(o.GetDefaultValue()), bounds(o), dash(o.GetDescription()))
	}
}

// bounds describes an option's range or allowed values, "-" for none.
func bounds(o *mgrv1.ModuleOption) string {
	switch {
	case len(o.GetAllowedValues()) > 0:
		return strings.Join(o.GetAllowedValues(), "|")
	case o.GetMin() != "" || o.GetMax() != "":
		return "[" + o.GetMin() + ".." + o.GetMax() + "]"
	}
	return "-"
}

// quoteEmpty shows an empty value as "".
func quoteEmpty(s string) string {
	if s == "" {
		return `""`
	}
	return s
}
