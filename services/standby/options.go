package standby

import (
	"context"
	"fmt"
	"maps"
	"strconv"
	"time"

	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
	"github.com/mgrplane/mgrplane/internal/modopt"
)

// MaxOptions bounds the options of one module.
const MaxOptions = 64

// optionTypes maps OptionType to the map's type.
var optionTypes = map[OptionType]mgrv1.OptionType{
	OptionString:   mgrv1.OptionType_OPTION_TYPE_STRING,
	OptionInt:      mgrv1.OptionType_OPTION_TYPE_INT,
	OptionFloat:    mgrv1.OptionType_OPTION_TYPE_FLOAT,
	OptionBool:     mgrv1.OptionType_OPTION_TYPE_BOOL,
	OptionDuration: mgrv1.OptionType_OPTION_TYPE_DURATION,
}

// moduleOptions checks m's option declarations, if it has any, and returns
// them as the beacons report them.
func moduleOptions(m Module) ([]*mgrv1.ModuleOption, error) {
	om, ok := m.(OptionsModule)
	if !ok {
		return nil, nil
	}
	decl := om.Options()
	if len(decl) > MaxOptions {
		return nil, fmt.Errorf("%d options, at most %d allowed", len(decl), MaxOptions)
	}
	seen := map[string]bool{}
	out := make([]*mgrv1.ModuleOption, 0, len(decl))
	for i, o := range decl {
		if len(o.Name) == 0 || len(o.Name) > 64 || !optionRE.MatchString(o.Name) {
			return nil, fmt.Errorf("options[%d] %q: name must be 1 to 64 characters of [A-Za-z0-9_.-]", i, o.Name)
		}
		if seen[o.Name] {
			return nil, fmt.Errorf("option %q: declared twice", o.Name)
		}
		seen[o.Name] = true
		t, ok := optionTypes[o.Type]
		if !ok {
			return nil, fmt.Errorf("option %q: type %d is not one of OptionString, OptionInt, OptionFloat, OptionBool, OptionDuration", o.Name, o.Type)
		}
		if len(o.Description) > modopt.MaxValueLen {
			return nil, fmt.Errorf("option %q: description of %d bytes, at most %d allowed", o.Name, len(o.Description), modopt.MaxValueLen)
		}
		mo := &mgrv1.ModuleOption{
			Name: o.Name, Type: t, DefaultValue: o.Default, Description: o.Description,
			Min: o.Min, Max: o.Max, AllowedValues: o.Allowed,
		}
		if err := modopt.Validate(mo); err != nil {
			return nil, fmt.Errorf("option %q: %w", o.Name, err)
		}
		// Report the default in its canonical form, as the map stores values.
		mo.DefaultValue, _ = modopt.Canonical(t, o.Default)
		out = append(out, mo)
	}
	return out, nil
}

// option finds a declared option.
func (h host) option(name string) *mgrv1.ModuleOption {
	for _, o := range h.opts {
		if o.GetName() == name {
			return o
		}
	}
	return nil
}

// optionIn is the value of option name in m: the one set if it is valid
// for this manager's declaration, else the default.
func (h host) optionIn(m *mgrv1.MgrMap, name string) string {
	o := h.option(name)
	if o == nil {
		return ""
	}
	if v, ok := m.GetModuleConfig()[h.name].GetValues()[name]; ok {
		if c, err := modopt.Check(o, v); err == nil {
			return c
		}
	}
	return o.GetDefaultValue()
}

func (h host) Option(name string) string { return h.optionIn(h.s.role.Map(), name) }

func (h host) IntOption(name string) int64 {
	n, _ := strconv.ParseInt(h.Option(name), 10, 64)
	return n
}

func (h host) FloatOption(name string) float64 {
	f, _ := strconv.ParseFloat(h.Option(name), 64)
	return f
}

func (h host) BoolOption(name string) bool {
	b, _ := strconv.ParseBool(h.Option(name))
	return b
}

func (h host) DurationOption(name string) time.Duration {
	d, _ := time.ParseDuration(h.Option(name))
	return d
}

// values is every declared option's value in m.
func (h host) values(m *mgrv1.MgrMap) map[string]string {
	v := make(map[string]string, len(h.opts))
	for _, o := range h.opts {
		v[o.GetName()] = h.optionIn(m, o.GetName())
	}
	return v
}

func (h host) OptionsChanged(ctx context.Context) <-chan struct{} {
	out := make(chan struct{}, 1)
	maps := h.s.role.Watch(ctx)
	go func() {
		defer close(out)
		var last map[string]string
		for m := range maps {
			v := h.values(m)
			if last != nil && !equalValues(last, v) {
				select {
				case out <- struct{}{}:
				default:
				}
			}
			last = v
		}
	}()
	return out
}

func equalValues(a, b map[string]string) bool { return maps.Equal(a, b) }
