package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// A YAML policy file is converted to JSON node by node and then decoded by
// the JSON decoder, so that both formats follow one set of rules. The
// conversion keeps what the file says: strings and timestamps stay the text
// that was written, a number passes only when its text is already a JSON
// number, and anything without a faithful JSON form (binary data, custom
// tags, non-string keys, merge keys) is an error naming its field.

// Limits of the conversion.
const (
	// maxAliasBytes bounds the JSON that aliases may add, so that a
	// document whose aliases nest into billions of nodes fails at once.
	maxAliasBytes = 1 << 20
	// maxYAMLDepth bounds the nesting of mappings and sequences; a policy
	// needs four levels (filesystem.mounts[0].source).
	maxYAMLDepth = 16
)

// yamlToJSON converts a YAML policy, one document holding a mapping (or
// nothing), to JSON for the decoder.
func yamlToJSON(data []byte) ([]byte, error) {
	root, err := yamlRoot(data)
	if err != nil {
		return nil, err
	}
	if root == nil || root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" {
		return []byte("{}"), nil
	}
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%w: a policy must be a mapping, not %s", ErrInvalid, nodeKind(root))
	}
	c := yamlConverter{out: make([]byte, 0, len(data)+len(data)/2)}
	if err := c.value(root); err != nil {
		return nil, err.toError()
	}
	return c.out, nil
}

// yamlRoot parses data, which must hold at most one YAML document, and
// returns the document's top node, or nil when there is no document.
func yamlRoot(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	switch err := dec.Decode(&doc); {
	case errors.Is(err, io.EOF):
		return nil, nil
	case err != nil:
		return nil, yamlError(err)
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, yamlError(err)
	default:
		return nil, fmt.Errorf("%w: a policy file holds one YAML document, found another at line %d", ErrInvalid, next.Line)
	}
	if len(doc.Content) != 1 {
		return nil, fmt.Errorf("%w: YAML document without content", ErrInvalid)
	}
	return doc.Content[0], nil
}

// yamlError reports a YAML syntax error. The parser's message is clipped
// and, should it hold a control character, quoted.
func yamlError(err error) error {
	msg := clipTo(err.Error(), 2*maxEcho)
	if hasControl(msg) || !utf8.ValidString(msg) {
		msg = strconv.Quote(msg)
	}
	return fmt.Errorf("%w: %s", ErrInvalid, msg)
}

// yamlConverter writes the JSON form of a YAML node tree.
type yamlConverter struct {
	out     []byte
	open    []*yaml.Node // mappings and sequences being converted, outermost first
	aliases int          // depth of alias expansion at the current node
	aliasAt int          // len(out) when the outermost alias being expanded began
	aliased int          // bytes written by outermost aliases already expanded
	// asText is set while the top-level env mapping is converted: its
	// numbers and booleans are taken as the text written (0755, True).
	asText bool
}

// value writes the JSON form of n. Errors carry the path below n.
func (c *yamlConverter) value(n *yaml.Node) *fileError {
	if c.aliases > 0 && c.aliased+len(c.out)-c.aliasAt > maxAliasBytes {
		return wrongValue("aliases expand the policy by more than %d bytes", maxAliasBytes)
	}
	switch n.Kind {
	case yaml.AliasNode:
		return c.alias(n)
	case yaml.MappingNode:
		return c.collection(n, "!!map", c.mapping)
	case yaml.SequenceNode:
		return c.collection(n, "!!seq", c.sequence)
	case yaml.ScalarNode:
		return c.scalar(n)
	}
	return wrongValue("unsupported YAML node")
}

// alias writes the node an alias refers to, counting what it adds.
func (c *yamlConverter) alias(n *yaml.Node) *fileError {
	if n.Alias == nil {
		return wrongValue("alias %s has no anchor", quote("*"+n.Value))
	}
	if c.aliases == 0 {
		c.aliasAt = len(c.out)
	}
	c.aliases++
	err := c.value(n.Alias)
	c.aliases--
	if c.aliases == 0 {
		c.aliased += len(c.out) - c.aliasAt
	}
	return err
}

// collection checks a mapping's or sequence's tag, nesting and cycles, then
// writes it with write.
func (c *yamlConverter) collection(n *yaml.Node, tag string, write func(*yaml.Node) *fileError) *fileError {
	switch {
	case n.ShortTag() != tag:
		return unsupportedTag(n.ShortTag())
	case slices.Contains(c.open, n):
		return wrongValue("alias refers to a node that contains it")
	case len(c.open) >= maxYAMLDepth:
		return wrongValue("nested more than %d levels deep", maxYAMLDepth)
	}
	c.open = append(c.open, n)
	err := write(n)
	c.open = c.open[:len(c.open)-1]
	return err
}

// mapping writes a mapping as an object. Keys must be strings; duplicate
// keys are left to the decoder, which rejects them naming the field.
func (c *yamlConverter) mapping(n *yaml.Node) *fileError {
	c.out = append(c.out, '{')
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, err := mappingKey(n.Content[i])
		if err != nil {
			return err
		}
		if i > 0 {
			c.out = append(c.out, ',')
		}
		c.out = appendJSONString(c.out, key)
		c.out = append(c.out, ':')
		env := len(c.open) == 1 && key == "env"
		c.asText = c.asText || env
		err = c.value(n.Content[i+1])
		c.asText = c.asText && !env
		if err != nil {
			return err.in(keySegment(key))
		}
	}
	c.out = append(c.out, '}')
	return nil
}

// mappingKey returns the text of a mapping key, which must be a string.
func mappingKey(k *yaml.Node) (string, *fileError) {
	if k.Kind == yaml.AliasNode && k.Alias != nil {
		k = k.Alias
	}
	switch tag := k.ShortTag(); {
	case k.Kind != yaml.ScalarNode:
		return "", wrongValue("a key must be a string, not %s", nodeKind(k))
	case tag == "!!merge":
		return "", wrongValue("merge keys (<<) are not supported: write the fields out").in(keySegment(k.Value))
	case tag != "!!str" || !utf8.ValidString(k.Value):
		return "", wrongValue("a key must be a string, not %s (quote it)", tagName(tag)).in(keySegment(k.Value))
	}
	return k.Value, nil
}

// sequence writes a sequence as an array.
func (c *yamlConverter) sequence(n *yaml.Node) *fileError {
	c.out = append(c.out, '[')
	for i, e := range n.Content {
		if i > 0 {
			c.out = append(c.out, ',')
		}
		if err := c.value(e); err != nil {
			return err.in("[" + strconv.Itoa(i) + "]")
		}
	}
	c.out = append(c.out, ']')
	return nil
}

// scalar writes a scalar by its resolved tag.
func (c *yamlConverter) scalar(n *yaml.Node) *fileError {
	switch tag := n.ShortTag(); tag {
	case "!!int", "!!float", "!!bool":
		if c.asText { // an environment value: the text as written
			c.out = appendJSONString(c.out, n.Value)
			return nil
		}
		return c.typedScalar(n, tag)
	case "!!str", "!!timestamp":
		if !utf8.ValidString(n.Value) {
			return wrongValue("invalid UTF-8 in string")
		}
		c.out = appendJSONString(c.out, n.Value)
	case "!!null":
		switch n.Value {
		case "", "~", "null", "Null", "NULL":
			c.out = append(c.out, "null"...)
		default:
			return wrongValue("!!null %s is not null", quote(n.Value))
		}
	default:
		return unsupportedTag(tag)
	}
	return nil
}

// typedScalar writes a number, which must already be a JSON number, or a
// boolean.
func (c *yamlConverter) typedScalar(n *yaml.Node, tag string) *fileError {
	if tag != "!!bool" {
		if !isJSONNumber(n.Value) {
			return wrongValue("want a decimal number, got %s %s", tag, quote(n.Value))
		}
		c.out = append(c.out, n.Value...)
		return nil
	}
	switch n.Value {
	case "true", "True", "TRUE":
		c.out = append(c.out, "true"...)
	case "false", "False", "FALSE":
		c.out = append(c.out, "false"...)
	default:
		return wrongValue("!!bool %s is not true or false", quote(n.Value))
	}
	return nil
}

// unsupportedTag reports a value whose tag has no JSON form.
func unsupportedTag(tag string) *fileError {
	return wrongValue("tag %s is not supported in a policy", tagName(tag))
}

// tagName prints a tag: the standard ones as they are, others quoted.
func tagName(tag string) string {
	switch tag {
	case "!!str", "!!int", "!!float", "!!bool", "!!null", "!!timestamp", "!!binary", "!!map", "!!seq",
		"!!merge", "!!set", "!!omap", "!!pairs":
		return tag
	}
	return quote(tag)
}

// nodeKind names the kind of a YAML node for an error.
func nodeKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a sequence"
	case yaml.AliasNode:
		return "an alias"
	}
	return "a scalar"
}

// isJSONNumber reports whether s is a number in the JSON grammar:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func isJSONNumber(s string) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		i = digitsEnd(s, i)
	default:
		return false
	}
	if i < len(s) && s[i] == '.' {
		if i = digitsEnd(s, i+1); s[i-1] == '.' {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		start := i
		if i = digitsEnd(s, i); i == start {
			return false
		}
	}
	return i == len(s)
}

// appendJSONString appends s, valid UTF-8, as a JSON string.
func appendJSONString(out []byte, s string) []byte {
	const hex = "0123456789abcdef"
	out = append(out, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			out = append(out, '\\', c)
		case c < 0x20:
			out = append(out, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			out = append(out, c)
		}
	}
	return append(out, '"')
}
