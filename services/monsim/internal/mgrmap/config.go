package mgrmap

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
	"github.com/mgrplane/mgrplane/internal/modopt"
)

// MaxOptionNameLen bounds a module option's name.
const MaxOptionNameLen = MaxMetadataKeyLen

// DeclaredOptions returns the options the managers in m declare for module,
// and whether any manager reports the module at all. The active's report
// wins over the standbys'; among standbys the lowest gid's.
func DeclaredOptions(m *mgrv1.MgrMap, module string) ([]*mgrv1.ModuleOption, bool) {
	find := func(mods []*mgrv1.ModuleInfo) *mgrv1.ModuleInfo {
		for _, mi := range mods {
			if mi.GetName() == module {
				return mi
			}
		}
		return nil
	}
	if m.GetActiveGid() != 0 {
		if mi := find(m.GetAvailableModules()); mi != nil {
			return mi.GetOptions(), true
		}
	}
	for _, s := range m.GetStandbys() {
		if mi := find(s.GetAvailableModules()); mi != nil {
			return mi.GetOptions(), true
		}
	}
	return nil, false
}

// LookupOption finds option in module's declared options. The error wraps
// ErrNotFound and names what is known: an unknown module, or the module's
// options.
func LookupOption(m *mgrv1.MgrMap, module, option string) (*mgrv1.ModuleOption, error) {
	if err := ValidateModuleName("module", module); err != nil {
		return nil, err
	}
	if len(option) == 0 || len(option) > MaxOptionNameLen || !keyRE.MatchString(option) {
		return nil, fmt.Errorf("%w: option %q: must be 1 to %d characters of [A-Za-z0-9_.-]", ErrInvalid, clip(option), MaxOptionNameLen)
	}
	opts, known := DeclaredOptions(m, module)
	if !known {
		return nil, fmt.Errorf("%w: module %s is not reported by any manager", ErrNotFound, module)
	}
	for _, o := range opts {
		if o.GetName() == option {
			return o, nil
		}
	}
	names := make([]string, 0, len(opts))
	for _, o := range opts {
		names = append(names, o.GetName())
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("%w: module %s has no option %s (it declares no options)", ErrNotFound, module, option)
	}
	return nil, fmt.Errorf("%w: module %s has no option %s (its options: %s)", ErrNotFound, module, option, strings.Join(names, ", "))
}

// config sets or removes one module option. A value must be of the declared
// option's type, within its bounds, one of its allowed values; the map
// stores its canonical form. Removing an option that is set always works
// (even when no manager declares it any more); removing one not set changes
// nothing, once the option is known.
func (t *txn) config(op *mgrv1.ConfigOp) error {
	mod, opt := op.GetModule(), op.GetOption()
	if op.GetRemove() {
		if _, set := t.m.GetModuleConfig()[mod].GetValues()[opt]; set {
			t.setModuleOption(mod, opt, "", true)
			t.setCause(mgrv1.ChangeCause_CHANGE_CAUSE_CONFIG, "mgr/%s/%s removed by %s", mod, opt, actor(op.GetActor()))
			return nil
		}
		_, err := LookupOption(t.m, mod, opt)
		return err
	}
	o, err := LookupOption(t.m, mod, opt)
	if err != nil {
		return err
	}
	v, err := modopt.Check(o, op.GetValue())
	if err != nil {
		return fmt.Errorf("%w: mgr/%s/%s (%s): %v", ErrInvalid, mod, opt, modopt.TypeName(o.GetType()), err)
	}
	if cur, set := t.m.GetModuleConfig()[mod].GetValues()[opt]; set && cur == v {
		return nil
	}
	t.setModuleOption(mod, opt, v, false)
	t.setCause(mgrv1.ChangeCause_CHANGE_CAUSE_CONFIG, "mgr/%s/%s set to %s by %s", mod, opt, clip(v), actor(op.GetActor()))
	return nil
}

// setModuleOption writes one value (or removes it) into a copy of the
// module's config, so the previous map is left as it was.
func (t *txn) setModuleOption(mod, opt, v string, remove bool) {
	cfg := maps.Clone(t.m.GetModuleConfig())
	if cfg == nil {
		cfg = map[string]*mgrv1.ModuleConfig{}
	}
	vals := maps.Clone(cfg[mod].GetValues())
	if vals == nil {
		vals = map[string]string{}
	}
	if remove {
		delete(vals, opt)
	} else {
		vals[opt] = v
	}
	if len(vals) == 0 {
		delete(cfg, mod)
	} else {
		cfg[mod] = &mgrv1.ModuleConfig{Values: vals}
	}
	if len(cfg) == 0 {
		cfg = nil
	}
	t.m.ModuleConfig = cfg
}

// OptionValues lists module's options (every module's when module is empty)
// with their values in m: each declared option with its value or default,
// then each value set for an option no manager declares. Sorted by module,
// then option.
func OptionValues(m *mgrv1.MgrMap, module string) []*mgrv1.ModuleOptionValue {
	names := map[string]bool{}
	if module != "" {
		names[module] = true
	} else {
		for n := range m.GetModuleConfig() {
			names[n] = true
		}
		collect := func(mods []*mgrv1.ModuleInfo) {
			for _, mi := range mods {
				names[mi.GetName()] = true
			}
		}
		if m.GetActiveGid() != 0 {
			collect(m.GetAvailableModules())
		}
		for _, s := range m.GetStandbys() {
			collect(s.GetAvailableModules())
		}
	}
	var out []*mgrv1.ModuleOptionValue
	for _, mod := range slices.Sorted(maps.Keys(names)) {
		set := m.GetModuleConfig()[mod].GetValues()
		opts, _ := DeclaredOptions(m, mod)
		declared := map[string]bool{}
		var rows []*mgrv1.ModuleOptionValue
		for _, o := range opts {
			declared[o.GetName()] = true
			v, ok := set[o.GetName()]
			if !ok {
				v = o.GetDefaultValue()
			}
			rows = append(rows, &mgrv1.ModuleOptionValue{Module: mod, Option: o, Value: v, Set: ok})
		}
		for name, v := range set {
			if !declared[name] {
				rows = append(rows, &mgrv1.ModuleOptionValue{Module: mod, Option: &mgrv1.ModuleOption{Name: name}, Value: v, Set: true})
			}
		}
		slices.SortFunc(rows, func(a, b *mgrv1.ModuleOptionValue) int {
			return strings.Compare(a.GetOption().GetName(), b.GetOption().GetName())
		})
		out = append(out, rows...)
	}
	return out
}
